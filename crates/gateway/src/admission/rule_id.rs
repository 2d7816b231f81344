//! Stable rule ids, in the order the rules run (docs/admission.md lists
//! them). They appear in refusal details, log lines and `clawgate auth
//! explain`; never rename one.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    Protocol,
    Origin,
    Credential,
    DeviceProof,
    DevicePaired,
    SilentLocalPairing,
    ProxyDeviceAutoApprove,
    PairingRequired,
    LocalOwner,
    ServicePrincipal,
    TrustedProxy,
    TrustedProxyLoopbackUser,
    BrowserNeedsDevice,
    Scopeless,
    NoIdentity,
}

impl RuleId {
    pub const ALL: &'static [RuleId] = &[
        RuleId::Protocol,
        RuleId::Origin,
        RuleId::Credential,
        RuleId::DeviceProof,
        RuleId::DevicePaired,
        RuleId::SilentLocalPairing,
        RuleId::ProxyDeviceAutoApprove,
        RuleId::PairingRequired,
        RuleId::LocalOwner,
        RuleId::ServicePrincipal,
        RuleId::TrustedProxy,
        RuleId::TrustedProxyLoopbackUser,
        RuleId::BrowserNeedsDevice,
        RuleId::Scopeless,
        RuleId::NoIdentity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::Protocol => "protocol",
            RuleId::Origin => "origin",
            RuleId::Credential => "credential",
            RuleId::DeviceProof => "device-proof",
            RuleId::DevicePaired => "device-paired",
            RuleId::SilentLocalPairing => "silent-local-pairing",
            RuleId::ProxyDeviceAutoApprove => "proxy-device-auto-approve",
            RuleId::PairingRequired => "pairing-required",
            RuleId::LocalOwner => "local-owner",
            RuleId::ServicePrincipal => "service-principal",
            RuleId::TrustedProxy => "trusted-proxy",
            RuleId::TrustedProxyLoopbackUser => "trusted-proxy-loopback-user",
            RuleId::BrowserNeedsDevice => "browser-needs-device",
            RuleId::Scopeless => "scopeless",
            RuleId::NoIdentity => "no-identity",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
