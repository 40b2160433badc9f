//! Digests as the distribution spec allows them (sha256 and sha512): the
//! one digest type of `estiba-oci`, which the image store uses too. An
//! invalid digest becomes the spec's DIGEST_INVALID (a 400, never a 500)
//! through `From<estiba_oci::Error>` in `error.rs`.

pub use estiba_oci::{Algorithm, Digest, Hasher};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Code, Error};

    #[test]
    fn invalid_digests_are_the_specs_digest_invalid() {
        for bad in [
            "",
            "sha256",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:../../../../etc/passwd",
        ] {
            let err: Error = bad.parse::<Digest>().unwrap_err().into();
            assert_eq!(err.code(), Some(Code::DigestInvalid), "{bad}");
        }
        assert_eq!(
            Digest::compute(Algorithm::Sha512, b"").to_string().len(),
            "sha512:".len() + 128
        );
    }
}
