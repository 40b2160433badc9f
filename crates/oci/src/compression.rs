//! Layer compression, detected from the stream's magic bytes rather than
//! trusted from a media type.

use std::io::{self, BufRead, BufReader, Read};

use crate::media;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects the compression from the first bytes of a blob.
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for a layer with this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => media::OCI_LAYER_TAR,
            Compression::Gzip => media::OCI_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
        }
    }
}

/// Wraps `reader` in the decompressor its magic bytes call for.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let compression = Compression::detect(buffered.fill_buf()?);
    let out: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(buffered)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        ),
    };
    Ok((compression, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trips_gzip_and_plain() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"layer bytes").unwrap();
        let gz = gz.finish().unwrap();
        for (input, kind) in [
            (gz, Compression::Gzip),
            (b"layer bytes".to_vec(), Compression::None),
        ] {
            let (c, mut r) = decompress(&input[..]).unwrap();
            assert_eq!(c, kind);
            let mut out = String::new();
            r.read_to_string(&mut out).unwrap();
            assert_eq!(out, "layer bytes");
        }
    }

    #[test]
    fn decodes_zstd() {
        // "hello\n" compressed by `zstd`.
        let z: &[u8] = &[
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x31, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
            0x0a, 0x53, 0x88, 0xbd, 0x91,
        ];
        let (c, mut r) = decompress(z).unwrap();
        assert_eq!(c, Compression::Zstd);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello\n");
    }
}
