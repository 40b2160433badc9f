//! The registry's errors. [`Error`] is the crate's one error type; each
//! variant that reaches a client maps to a code of the distribution spec and
//! its HTTP status.

/// The error codes of the OCI distribution spec (plus `TOOMANYREQUESTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    TagInvalid,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// An out-of-order chunk: `BLOB_UPLOAD_INVALID` with 416.
    RangeInvalid,
    /// A request body over the limit: `SIZE_INVALID` with 413.
    TooLarge,
}

impl Code {
    /// The code as the spec spells it in the JSON error body.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid | Code::RangeInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::TagInvalid => "TAG_INVALID",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid | Code::TooLarge => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    /// The HTTP status the spec pairs with the code.
    pub fn status(self) -> u16 {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => 404,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::TagInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => 400,
            Code::Unauthorized => 401,
            Code::Denied => 403,
            Code::Unsupported => 405,
            Code::TooManyRequests => 429,
            Code::RangeInvalid => 416,
            Code::TooLarge => 413,
        }
    }
}

/// Errors of the registry: its server, storage, auth and client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request the spec answers with an error code.
    #[error("{}: {message}", code.as_str())]
    Api { code: Code, message: String },
    #[error("{what} is malformed: {why}")]
    Malformed { what: String, why: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Signature(String),
    /// A remote registry answered a client request with an error.
    #[error("{url}: {status}: {message}")]
    Remote {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Http(String),
    #[error(transparent)]
    Store(#[from] estiba_store::Error),
    #[error(transparent)]
    Os(#[from] estiba_os::Error),
    #[error(transparent)]
    Oci(estiba_oci::Error),
}

/// Format errors a client caused become the spec's codes; the rest stay
/// internal.
impl From<estiba_oci::Error> for Error {
    fn from(e: estiba_oci::Error) -> Self {
        match e {
            estiba_oci::Error::InvalidDigest { .. } => {
                Error::api(Code::DigestInvalid, e.to_string())
            }
            other => Error::Oci(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn api(code: Code, message: impl Into<String>) -> Self {
        Error::Api {
            code,
            message: message.into(),
        }
    }

    /// The spec code a client sees; internal failures have none.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

estiba_os::io_context!(Error);
