//! The admission decision: one pure function over one connection's facts.
//! No I/O, no clock, no randomness. The rules themselves are the ordered
//! table in [`super::rules`].

use crate::config::Config;
use crate::store::DeviceView;

use super::decision::Decided;
use super::facts::ConnectFacts;
use super::rules;

/// Decide one connection. `view` is the store's record of the proven device
/// (read before the call), if a device proved its key.
pub fn decide(facts: &ConnectFacts, config: &Config, view: Option<&DeviceView>) -> Decided {
    rules::walk(facts, config, view)
}
