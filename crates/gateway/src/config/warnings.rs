//! Settings that are allowed but worth a line in the start-up log.

use super::Config;

impl Config {
    /// Warnings to log once at start-up. None of them stops the gateway.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut warnings = self.file_notes.clone();
        let auto = self.trusted_proxy.as_ref().and_then(|tp| tp.device_auto_approve.as_ref());
        if auto.is_some_and(|scopes| scopes.iter().any(|s| s == clawgate_protocol::scopes::ADMIN)) {
            warnings.push(
                "gateway.auth.trustedProxy.deviceAutoApprove grants operator.admin: every device of a proxy user \
                 whose identityScopes include it becomes an administrator without anyone approving it; list \
                 narrower scopes unless the proxy's users are all administrators"
                    .to_owned(),
            );
        }
        warnings
    }
}
