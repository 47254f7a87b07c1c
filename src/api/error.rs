//! The API error enum and the one RetCode table.
//!
//! Every failure a client can see is an `ApiError`; `ret_code` is exhaustive (no `_` arm) so a new
//! variant must be given a code. Messages name the offending parameter and never carry driver or IO
//! text: `Internal` shows only "internal error" and the request id, its source goes to the log.

use crate::store::{Resource, StoreError};

/// Gateway and business RetCodes (spec §2.7). Only this file knows the numbers.
pub mod code {
    pub const MISSING_ACTION: u32 = 160;
    pub const UNKNOWN_ACTION: u32 = 161;
    pub const MISSING_SIGNATURE: u32 = 170;
    pub const BAD_SIGNATURE: u32 = 171;
    pub const UNKNOWN_USER: u32 = 172;
    pub const INVALID_PARAM: u32 = 230;
    pub const PARAM_TOO_LARGE: u32 = 240;
    pub const PROJECT_NOT_FOUND: u32 = 292;
    pub const SSL_NOT_FOUND: u32 = 4079;
    pub const LB_NOT_FOUND: u32 = 4103;
    pub const BIND_FAILED: u32 = 4105;
    pub const UNBIND_FAILED: u32 = 4106;
    pub const PORT_IN_USE: u32 = 4107;
    pub const SSL_IN_USE: u32 = 4108;
    pub const SSL_INVALID: u32 = 4111;
    pub const NAME_TOO_LONG: u32 = 4114;
    pub const LISTENER_NOT_FOUND: u32 = 4143;
    pub const PROTOCOL_NOT_SUPPORTED: u32 = 4144;
    pub const QUOTA_EXCEEDED: u32 = 4207;
    pub const INTERNAL: u32 = 4999;
    pub const VSERVER_ALREADY_BOUND: u32 = 63072;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("MISSING_ACTION")]
    MissingAction,
    #[error("Action [{0}] not exist")]
    UnknownAction(String),
    #[error("Missing signature")]
    MissingSignature,
    #[error("Signature VerifyAC Error")]
    BadSignature,
    #[error("User Not Exists")]
    UnknownUser,
    /// Missing or malformed parameter; `why` adds detail after the UCloud-style prefix.
    #[error("Params [{name}] not available{}", detail(why))]
    InvalidParam { name: String, why: String },
    #[error("Params [{name}] too large{}", detail(why))]
    TooLarge { name: String, why: String },
    #[error("Project [{0}] not exists")]
    ProjectNotFound(String),
    #[error("{0}")]
    Store(StoreError),
    #[error("ssl content invalid: {0}")]
    CertificateInvalid(String),
    #[error("name of [{0}] is longer than 50 characters")]
    NameTooLong(&'static str),
    #[error("{0}")]
    ProtocolNotSupported(String),
    #[error("{0}")]
    BindFailed(String),
    /// The listener's address and port cannot be bound on the host.
    #[error("{0}")]
    PortTaken(String),
    #[error("internal error, request id {request_id}")]
    Internal {
        request_id: String,
        #[source]
        source: anyhow::Error,
    },
}

fn detail(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    }
}

impl ApiError {
    /// A missing or invalid parameter, named as on the wire.
    pub fn param(name: impl Into<String>) -> ApiError {
        ApiError::InvalidParam {
            name: name.into(),
            why: String::new(),
        }
    }

    pub fn param_why(name: impl Into<String>, why: impl Into<String>) -> ApiError {
        ApiError::InvalidParam {
            name: name.into(),
            why: why.into(),
        }
    }

    pub fn ret_code(&self) -> u32 {
        match self {
            ApiError::MissingAction => code::MISSING_ACTION,
            ApiError::UnknownAction(_) => code::UNKNOWN_ACTION,
            ApiError::MissingSignature => code::MISSING_SIGNATURE,
            ApiError::BadSignature => code::BAD_SIGNATURE,
            ApiError::UnknownUser => code::UNKNOWN_USER,
            ApiError::InvalidParam { .. } => code::INVALID_PARAM,
            ApiError::TooLarge { .. } => code::PARAM_TOO_LARGE,
            ApiError::ProjectNotFound(_) => code::PROJECT_NOT_FOUND,
            ApiError::Store(err) => store_ret_code(err),
            ApiError::CertificateInvalid(_) => code::SSL_INVALID,
            ApiError::NameTooLong(_) => code::NAME_TOO_LONG,
            ApiError::ProtocolNotSupported(_) => code::PROTOCOL_NOT_SUPPORTED,
            ApiError::BindFailed(_) => code::BIND_FAILED,
            ApiError::PortTaken(_) => code::PORT_IN_USE,
            ApiError::Internal { .. } => code::INTERNAL,
        }
    }
}

fn store_ret_code(err: &StoreError) -> u32 {
    match err {
        StoreError::NotFound { kind, .. } => match kind {
            Resource::Certificate => code::SSL_NOT_FOUND,
            Resource::LoadBalancer => code::LB_NOT_FOUND,
            Resource::Listener => code::LISTENER_NOT_FOUND,
            Resource::Backend => code::INVALID_PARAM,
            Resource::Project => code::PROJECT_NOT_FOUND,
            Resource::Account => code::UNKNOWN_USER,
        },
        StoreError::AccountExists(_) => code::INVALID_PARAM,
        StoreError::ListenerNotOnLb { .. } => code::LISTENER_NOT_FOUND,
        StoreError::PortInUse { .. } => code::PORT_IN_USE,
        StoreError::CertificateInUse(_) => code::SSL_IN_USE,
        StoreError::NotHttps(_) => code::BIND_FAILED,
        StoreError::VServerAlreadyBound { .. } => code::VSERVER_ALREADY_BOUND,
        StoreError::AlreadyBound { .. } => code::BIND_FAILED,
        StoreError::NotBound { .. } => code::UNBIND_FAILED,
        StoreError::DefaultCertificate(_) => code::UNBIND_FAILED,
        StoreError::Quota { .. } => code::QUOTA_EXCEEDED,
        StoreError::AddressPoolExhausted => code::QUOTA_EXCEEDED,
        StoreError::Backend(_) => code::INTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the whole table: renumbering a code must show up in review.
    #[test]
    fn ret_code_table() {
        let nf = |kind| {
            ApiError::Store(StoreError::NotFound {
                kind,
                id: "x-1".into(),
            })
        };
        let cases: Vec<(ApiError, u32, &str)> = vec![
            (ApiError::MissingAction, 160, "MISSING_ACTION"),
            (
                ApiError::UnknownAction("Foo".into()),
                161,
                "Action [Foo] not exist",
            ),
            (ApiError::MissingSignature, 170, "Missing signature"),
            (ApiError::BadSignature, 171, "Signature VerifyAC Error"),
            (ApiError::UnknownUser, 172, "User Not Exists"),
            (
                ApiError::param("OldSSLId"),
                230,
                "Params [OldSSLId] not available",
            ),
            (
                ApiError::param_why("Limit", "must be an integer"),
                230,
                "Params [Limit] not available: must be an integer",
            ),
            (
                ApiError::ProjectNotFound("org-x".into()),
                292,
                "Project [org-x] not exists",
            ),
            (nf(Resource::Certificate), 4079, "ssl [x-1] not found"),
            (
                nf(Resource::LoadBalancer),
                4103,
                "load balancer [x-1] not found",
            ),
            (nf(Resource::Listener), 4143, "listener [x-1] not found"),
            (
                ApiError::Store(StoreError::CertificateInUse("ssl-1".into())),
                4108,
                "certificate [ssl-1] is still bound",
            ),
            (
                ApiError::Store(StoreError::VServerAlreadyBound {
                    existing: "ssl-1".into(),
                }),
                63072,
                "ulb vserver alredy bind ssl, bind ssl: [ssl-1]",
            ),
        ];
        for (err, code, message) in cases {
            assert_eq!(err.ret_code(), code, "{err:?}");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn internal_error_hides_its_source() {
        let err = ApiError::Internal {
            request_id: "req-1".into(),
            source: anyhow::anyhow!("disk I/O error at /var/lib/secret.db"),
        };
        assert_eq!(err.to_string(), "internal error, request id req-1");
        assert_eq!(err.ret_code(), 4999);
    }
}
