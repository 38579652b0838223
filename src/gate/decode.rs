//! Undoing `Content-Encoding` on a model-list response before it is
//! filtered.
//!
//! Open WebUI compresses responses of 500 bytes and more with zstd, br or
//! gzip, whichever the client's `Accept-Encoding` prefers
//! (`ENABLE_COMPRESSION_MIDDLEWARE`, starlette-compress), and browsers offer
//! zstd, so the lists modelgate must rewrite usually arrive compressed. The
//! filter must see exactly the bytes the client would see after decoding:
//! anything it cannot decode is an error (the proxy answers 502), never a
//! pass-through of the unfiltered body.

use std::borrow::Cow;
use std::io::Read;

use http::HeaderValue;

use super::filter::FilterError;

/// At most this many stacked codings (`Content-Encoding: gzip, br`) are
/// undone; nothing legitimate stacks more than two.
const MAX_CODINGS: usize = 4;

/// Decodes `body` according to `content_encoding`.
///
/// - absent, empty or `identity`: the body itself;
/// - `gzip`, `x-gzip` (RFC 9110 §8.4.1.3: equivalent), `deflate` (the zlib
///   format, RFC 9110 §8.4.1.2), `br`, `zstd`, case-insensitive;
/// - a list (`gzip, br`): the codings were applied in the order listed
///   (RFC 9110 §8.4), so they are undone in reverse order; `identity`
///   members are skipped;
/// - anything else: [`FilterError::UnsupportedEncoding`] (fail closed).
///
/// Every stage is capped at `max_decoded` bytes: a larger result is
/// [`FilterError::TooLarge`] (a decompression bomb cannot exhaust memory).
/// Several `Content-Encoding` header lines are the caller's to join with
/// `, ` (or refuse) before calling this.
pub fn decode_body<'a>(
    content_encoding: Option<&HeaderValue>,
    body: &'a [u8],
    max_decoded: usize,
) -> Result<Cow<'a, [u8]>, FilterError> {
    let codings = match content_encoding {
        None => Vec::new(),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| FilterError::UnsupportedEncoding("non-ASCII".into()))?;
            let mut codings = Vec::new();
            for part in s.split(',') {
                let part = part.trim_matches([' ', '\t']);
                let coding = Coding::parse(part)?;
                if coding != Coding::Identity {
                    codings.push(coding);
                }
            }
            codings
        }
    };
    if codings.len() > MAX_CODINGS {
        return Err(FilterError::UnsupportedEncoding("too many codings".into()));
    }
    if body.len() > max_decoded {
        return Err(FilterError::TooLarge);
    }
    let mut current: Cow<'a, [u8]> = Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        current = Cow::Owned(coding.decode(&current, max_decoded)?);
    }
    Ok(current)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    fn parse(name: &str) -> Result<Coding, FilterError> {
        let lower = name.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "" | "identity" => Coding::Identity,
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "br" => Coding::Brotli,
            "zstd" => Coding::Zstd,
            _ => return Err(FilterError::UnsupportedEncoding(lower)),
        })
    }

    fn decode(self, input: &[u8], max: usize) -> Result<Vec<u8>, FilterError> {
        match self {
            Coding::Identity => Ok(input.to_vec()),
            // Multi-member gzip is decoded whole, as browsers do.
            Coding::Gzip => read_capped(flate2::read::MultiGzDecoder::new(input), max),
            Coding::Deflate => read_capped(flate2::read::ZlibDecoder::new(input), max),
            Coding::Brotli => read_capped(brotli::Decompressor::new(input, 4096), max),
            Coding::Zstd => {
                let decoder = zstd::stream::read::Decoder::new(input)
                    .map_err(|e| FilterError::Decode(e.to_string()))?;
                read_capped(decoder, max)
            }
        }
    }
}

fn read_capped<R: Read>(reader: R, max: usize) -> Result<Vec<u8>, FilterError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| FilterError::Decode(e.to_string()))?;
    if out.len() > max {
        return Err(FilterError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const BODY: &[u8] = br#"{"data":[{"id":"a"},{"id":"b"}]}"#;

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }
    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }
    fn br(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(b).unwrap();
        }
        out
    }
    fn zstd(b: &[u8]) -> Vec<u8> {
        zstd::encode_all(b, 3).unwrap()
    }
    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn identity() {
        assert_eq!(&*decode_body(None, BODY, 1 << 20).unwrap(), BODY);
        assert_eq!(
            &*decode_body(Some(&hv("identity")), BODY, 1 << 20).unwrap(),
            BODY
        );
        assert_eq!(&*decode_body(Some(&hv("")), BODY, 1 << 20).unwrap(), BODY);
    }

    #[test]
    fn each_coding() {
        for (name, enc) in [
            ("gzip", gzip(BODY)),
            ("x-gzip", gzip(BODY)),
            ("GZIP", gzip(BODY)),
            ("deflate", zlib(BODY)),
            ("br", br(BODY)),
            ("zstd", zstd(BODY)),
        ] {
            assert_eq!(
                &*decode_body(Some(&hv(name)), &enc, 1 << 20).unwrap(),
                BODY,
                "{name}"
            );
        }
    }

    #[test]
    fn stacked_codings_in_reverse_order() {
        // Applied gzip first, then br.
        let enc = br(&gzip(BODY));
        assert_eq!(
            &*decode_body(Some(&hv("gzip, br")), &enc, 1 << 20).unwrap(),
            BODY
        );
        assert!(decode_body(Some(&hv("br, gzip")), &enc, 1 << 20).is_err());
        assert_eq!(
            &*decode_body(Some(&hv("identity, zstd")), &zstd(BODY), 1 << 20).unwrap(),
            BODY
        );
    }

    #[test]
    fn unknown_or_corrupt_fails_closed() {
        assert!(matches!(
            decode_body(Some(&hv("compress")), BODY, 1 << 20),
            Err(FilterError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decode_body(Some(&hv("gzip")), BODY, 1 << 20),
            Err(FilterError::Decode(_))
        ));
        assert!(matches!(
            decode_body(Some(&hv("zstd")), BODY, 1 << 20),
            Err(FilterError::Decode(_))
        ));
        assert!(decode_body(Some(&hv("br")), b"\xff\xff\xff", 1 << 20).is_err());
        assert!(decode_body(Some(&hv("gzip,gzip,gzip,gzip,gzip")), BODY, 1 << 20).is_err());
    }

    #[test]
    fn bomb_refused() {
        let zeros = vec![b' '; 64 << 20];
        for (name, enc) in [
            ("gzip", gzip(&zeros)),
            ("zstd", zstd(&zeros)),
            ("br", br(&zeros)),
        ] {
            assert!(enc.len() < 1 << 20, "{name}: {}", enc.len());
            assert!(
                matches!(
                    decode_body(Some(&hv(name)), &enc, 8 << 20),
                    Err(FilterError::TooLarge)
                ),
                "{name}"
            );
        }
        // Exactly at the cap is fine.
        let enc = gzip(&zeros[..1000]);
        assert_eq!(
            decode_body(Some(&hv("gzip")), &enc, 1000).unwrap().len(),
            1000
        );
        assert!(matches!(
            decode_body(Some(&hv("gzip")), &enc, 999),
            Err(FilterError::TooLarge)
        ));
    }
}
