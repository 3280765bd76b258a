//! Compressed binlog data: MariaDB's zlib blocks (`log_bin_compress`) and MySQL's zstd
//! transaction payloads (`binlog_transaction_compression`).
//!
//! Design note: both libraries we build on drop these silently (`mysql_common` returns an empty
//! buffer when zstd fails, and does not know MariaDB's compressed events at all), so Sluice
//! inflates them itself. Every inflation is bounded by the size the event declares (itself
//! capped, so a corrupt header cannot make us allocate gigabytes), and the output must have
//! exactly that size: anything else is an error, never a shorter result.

use std::io::Read;

/// The largest inflated size Sluice accepts. The server cannot send a bigger event (its
/// `max_allowed_packet` is at most 1 GiB), so a larger declared size means a corrupt header.
pub(crate) const MAX_INFLATED: u64 = 1 << 30;

/// Inflates a MariaDB compressed block (sql/log_event.cc `binlog_buf_compress`): one header
/// byte `0x80 | lenlen` (lenlen 1..=4), the uncompressed length big-endian in `lenlen` bytes,
/// then a zlib stream.
pub(crate) fn inflate_mariadb(block: &[u8]) -> Result<Vec<u8>, String> {
    let (&head, rest) = block
        .split_first()
        .ok_or_else(|| "the compressed block is empty".to_owned())?;
    let lenlen = usize::from(head & 0x07);
    if head & 0x80 == 0 || !(1..=4).contains(&lenlen) {
        return Err(format!(
            "the compressed block starts with {head:#04x}, not 0x80|lenlen (lenlen 1..4)"
        ));
    }
    let len_bytes = rest
        .get(..lenlen)
        .ok_or_else(|| "the compressed block's length is cut short".to_owned())?;
    let declared = len_bytes
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let stream = flate2::read::ZlibDecoder::new(&rest[lenlen..]);
    read_exact_size(stream, declared, "zlib")
}

/// Decompresses a MySQL TRANSACTION_PAYLOAD's zstd data, which declares `declared` bytes.
pub(crate) fn unzstd(payload: &[u8], declared: u64) -> Result<Vec<u8>, String> {
    let stream = zstd::stream::read::Decoder::new(payload).map_err(|e| format!("zstd: {e}"))?;
    read_exact_size(stream, declared, "zstd")
}

/// Reads a decoder to its end, refusing more or fewer bytes than `declared`. Memory grows with
/// the real output (never pre-allocated from the declared size beyond a small amount).
fn read_exact_size<R: Read>(stream: R, declared: u64, what: &str) -> Result<Vec<u8>, String> {
    if declared > MAX_INFLATED {
        return Err(format!(
            "the event declares {declared} uncompressed bytes, more than the {MAX_INFLATED} a \
             server can send: the event is corrupt"
        ));
    }
    let mut out = Vec::with_capacity(declared.min(1 << 20) as usize);
    stream
        .take(declared + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what} data is corrupt: {e}"))?;
    if out.len() as u64 != declared {
        return Err(format!(
            "{what} data inflates to {}{} bytes, but the event declares {declared}",
            out.len(),
            if out.len() as u64 > declared { "+" } else { "" }
        ));
    }
    Ok(out)
}

/// The (type code, size) of each event in a decompressed transaction payload, in order. The
/// inner events carry no checksum; each starts with the usual 19-byte header.
pub(crate) fn inner_events(buf: &[u8]) -> Result<Vec<(u8, u32)>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let header = buf.get(at..at + 19).ok_or_else(|| {
            format!(
                "the payload ends inside an event header at byte {at} of {}",
                buf.len()
            )
        })?;
        let type_code = header[4];
        let size = u32::from_le_bytes(header[9..13].try_into().expect("4 bytes"));
        if (size as usize) < 19 || at + size as usize > buf.len() {
            return Err(format!(
                "the payload's event at byte {at} declares {size} bytes, which do not fit in {}",
                buf.len()
            ));
        }
        out.push((type_code, size));
        at += size as usize;
    }
    if out.is_empty() {
        return Err("the payload holds no events".to_owned());
    }
    Ok(out)
}

/// The parts of a MariaDB QUERY_COMPRESSED (165) event that Sluice uses.
pub(crate) struct CompressedQuery {
    pub schema: String,
    pub sql: String,
}

/// Parses a QUERY_COMPRESSED body: the QUERY post-header (thread id 4, exec time 4, schema
/// length 1, error code 2, status length 2), the status variables, the schema and a NUL, then
/// the compressed query text.
pub(crate) fn compressed_query(data: &[u8]) -> Result<CompressedQuery, String> {
    let short = || "the event is cut short".to_owned();
    let post = data.get(..13).ok_or_else(short)?;
    let schema_len = usize::from(post[8]);
    let status_len = usize::from(u16::from_le_bytes([post[11], post[12]]));
    let schema_at = 13 + status_len;
    let schema = data
        .get(schema_at..schema_at + schema_len)
        .ok_or_else(short)?;
    let text_at = schema_at + schema_len + 1;
    let block = data.get(text_at..).ok_or_else(short)?;
    let sql = inflate_mariadb(block)?;
    Ok(CompressedQuery {
        schema: String::from_utf8_lossy(schema).into_owned(),
        // The query is only inspected (first words, table names), never published.
        sql: String::from_utf8_lossy(&sql).into_owned(),
    })
}

/// A TRANSACTION_PAYLOAD header: its fields, then the payload. Parsed here because
/// `mysql_common` panics on an unknown compression type or an oversized field length.
pub(crate) struct PayloadHeader<'a> {
    /// 0 = zstd, 255 = none.
    pub algorithm: u64,
    pub uncompressed_size: u64,
    pub payload: &'a [u8],
}

/// Parses a TRANSACTION_PAYLOAD body: fields of (type, length, value) as length-encoded
/// integers (1 payload size, 2 compression type, 3 uncompressed size) up to the end mark (0),
/// then the payload.
pub(crate) fn payload_header(data: &[u8]) -> Result<PayloadHeader<'_>, String> {
    let short = || "its header is cut short".to_owned();
    let (mut size, mut algorithm, mut uncompressed) = (None, None, 0);
    let mut at = 0;
    loop {
        let (field, n) = lenenc(data.get(at..).ok_or_else(short)?).ok_or_else(short)?;
        at += n;
        if field == 0 {
            break;
        }
        let (len, n) = lenenc(data.get(at..).ok_or_else(short)?).ok_or_else(short)?;
        at += n;
        let value = data
            .get(at..at.saturating_add(len as usize))
            .ok_or_else(short)?;
        at += len as usize;
        let v = || lenenc(value).map(|v| v.0).ok_or_else(short);
        match field {
            1 => size = Some(v()?),
            2 => algorithm = Some(v()?),
            3 => uncompressed = v()?,
            _ => {}
        }
    }
    let (Some(size), Some(algorithm)) = (size, algorithm) else {
        return Err("its header lacks the payload size or the compression type".into());
    };
    if algorithm != 0 && algorithm != 255 {
        return Err(format!("unknown compression type {algorithm}"));
    }
    let payload = data
        .get(at..)
        .filter(|p| p.len() as u64 == size)
        .ok_or_else(|| {
            format!(
                "it declares {size} payload bytes but holds {}",
                data.len().saturating_sub(at)
            )
        })?;
    Ok(PayloadHeader {
        algorithm,
        uncompressed_size: uncompressed,
        payload,
    })
}

/// A length-encoded integer: the value and the bytes it used.
pub(crate) fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let n = match first {
        0..=250 => return Some((u64::from(first), 1)),
        252 => 2,
        253 => 3,
        254 => 8,
        _ => return None,
    };
    let bytes = b.get(1..1 + n)?;
    let mut v = [0u8; 8];
    v[..n].copy_from_slice(bytes);
    Some((u64::from_le_bytes(v), 1 + n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn block(data: &[u8], lenlen: u8) -> Vec<u8> {
        let mut out = vec![0x80 | lenlen];
        let len = data.len() as u64;
        for i in (0..lenlen).rev() {
            out.push((len >> (8 * i)) as u8);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        out.extend(z.finish().unwrap());
        out
    }

    #[test]
    fn mariadb_blocks_inflate_exactly() {
        let text = b"insert into t values (1)".repeat(20);
        assert_eq!(inflate_mariadb(&block(&text, 2)).unwrap(), text);
        // A wrong declared length is an error, not a shorter or longer result.
        let mut b = block(&text, 2);
        b[2] ^= 1;
        assert!(inflate_mariadb(&b).unwrap_err().contains("declares"));
        // A huge declared length is refused before anything is allocated for it.
        let mut b = block(&text, 4);
        b[1] = 0xff;
        assert!(inflate_mariadb(&b).unwrap_err().contains("corrupt"));
        assert!(inflate_mariadb(&[0x05, 1, 2]).is_err());
        assert!(inflate_mariadb(&[]).is_err());
    }
}
