//! Character sets: which decoder turns a character column's bytes into text.
//!
//! Design note: MySQL and MariaDB name a column's character set by a collation id in TABLE_MAP
//! metadata, and by name in `information_schema`. Both resolve here, once per column, into a
//! small `Copy` [`Charset`] that the row decoder keeps in its `ColumnKind`; the hot loop then only
//! matches on it. Decoding is strict: bytes that are not valid in the column's character set are
//! an error, never U+FFFD, and a character set Sluice cannot decode is refused by name when the
//! table is first mapped, before any of its rows is published.
//!
//! - The collation-id table ([`charset_name_for_collation`]) was generated from MariaDB 10.11's
//!   `information_schema.COLLATION_CHARACTER_SET_APPLICABILITY`, plus MySQL 8.0's `utf8mb4_0900`
//!   ids (255..=323), which MariaDB does not use. `tests/all/charsets.rs` checks it against the
//!   server.
//! - Single-byte character sets decode through 128-entry tables generated from the server itself
//!   (`tables.rs`): several of them differ from the WHATWG encodings of the same name in
//!   `encoding_rs` (MySQL's cp1250/cp1256/cp1257/greek/hebrew leave bytes undefined that WHATWG
//!   maps, latin5 is ISO-8859-9 and not windows-1254, swe7/dec8/hp8/keybcs2/armscii8/geostd8/macce
//!   and the DOS code pages are missing there).
//! - Multi-byte Asian character sets use `encoding_rs` (Shift_JIS, EUC-JP, GBK, Big5, EUC-KR),
//!   corrected where MariaDB maps a code differently or beyond WHATWG (sjis's JIS X 0208
//!   symbols, ujis/eucjpms user-defined areas and JIS X 0212 extras, gb2312's two punctuation
//!   marks, big5's ETEN kana and Cyrillic): about 160 ranges, also generated from the server.
//! - UTF-16, UTF-16LE, UCS-2 and UTF-32 are decoded here.

mod tables;

use encoding_rs::Encoding;

/// How to turn a character column's bytes into a value, resolved once per column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charset {
    name: &'static str,
    codec: Codec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// The `binary` character set: published as base64.
    Binary,
    /// No metadata at all: text when the bytes are valid UTF-8, base64 otherwise.
    Unknown,
    Utf8,
    /// `utf16` and `ucs2` (big-endian; UCS-2 is UTF-16 without surrogates).
    Utf16Be,
    Utf16Le,
    /// `utf32` (big-endian).
    Utf32Be,
    /// A single-byte set: bytes 0x80..=0xFF through `high`, and 0x00..=0x7F through `low`, or as
    /// ASCII when there is no `low`. 0xFFFF marks a byte the server has no character for.
    Table {
        high: &'static [u16; 128],
        low: Option<&'static [u16; 128]>,
    },
    /// A multi-byte set through `encoding_rs`, with the codes where MariaDB differs.
    Multi {
        enc: &'static Encoding,
        seq: Seq,
        overrides: &'static [(u32, u16, u32)],
    },
    /// A character set Sluice cannot decode. Refused when the table is mapped.
    Unsupported,
    /// A collation id that Sluice does not know.
    UnknownCollation(u16),
}

/// How a multi-byte character set splits bytes into characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
    /// Shift_JIS: lead bytes 0x81..=0x9F and 0xE0..=0xFC start two-byte characters.
    ShiftJis,
    /// EUC-JP: 0x8E and 0xA1..=0xFE start two-byte characters, 0x8F three-byte ones.
    EucJp,
    /// GBK, Big5, EUC-KR: 0x81..=0xFE start two-byte characters.
    DoubleByte,
}

impl Seq {
    #[inline]
    fn len(self, lead: u8) -> usize {
        match (self, lead) {
            (_, 0..=0x7F) => 1,
            (Seq::ShiftJis, 0x81..=0x9F | 0xE0..=0xFC) => 2,
            (Seq::ShiftJis, _) => 1,
            (Seq::EucJp, 0x8F) => 3,
            (Seq::EucJp, 0x8E | 0xA1..=0xFE) => 2,
            (Seq::EucJp, _) => 1,
            (Seq::DoubleByte, 0x81..=0xFE) => 2,
            (Seq::DoubleByte, _) => 1,
        }
    }
}

/// Bytes that are not valid text in the column's character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidText;

/// What a character column's bytes become.
pub(crate) enum Text {
    String(String),
    Bytes,
}

impl Charset {
    /// The `binary` character set (BINARY, VARBINARY, BLOB).
    pub(crate) const BINARY: Charset = Charset {
        name: "binary",
        codec: Codec::Binary,
    };
    /// No character set metadata at all.
    pub(crate) const UNKNOWN: Charset = Charset {
        name: "unknown",
        codec: Codec::Unknown,
    };
    /// utf8mb4 (and utf8mb3).
    pub(crate) const UTF8MB4: Charset = Charset {
        name: "utf8mb4",
        codec: Codec::Utf8,
    };

    /// Maps a collation id (TABLE_MAP charset metadata) to its character set.
    pub(crate) fn from_collation_id(id: u16) -> Charset {
        match charset_name_for_collation(id) {
            Some(name) => Charset::from_name(Some(name)),
            None => Charset {
                name: "unknown collation",
                codec: Codec::UnknownCollation(id),
            },
        }
    }

    /// Maps a character set name (`information_schema.COLUMNS.CHARACTER_SET_NAME`; `None` for
    /// the binary character set and non-character columns).
    pub fn from_name(name: Option<&str>) -> Charset {
        use tables::*;
        let Some(name) = name else {
            return Charset::BINARY;
        };
        let t = |name, high| Charset {
            name,
            codec: Codec::Table { high, low: None },
        };
        let w = |name, enc, seq, overrides| Charset {
            name,
            codec: Codec::Multi {
                enc,
                seq,
                overrides,
            },
        };
        use encoding_rs::{BIG5, EUC_JP, EUC_KR, GBK, SHIFT_JIS};
        use Seq::*;
        match name.to_ascii_lowercase().as_str() {
            "binary" => Charset::BINARY,
            "utf8mb4" => Charset::UTF8MB4,
            "utf8mb3" | "utf8" => Charset {
                name: "utf8mb3",
                codec: Codec::Utf8,
            },
            "utf16" => Charset {
                name: "utf16",
                codec: Codec::Utf16Be,
            },
            "ucs2" => Charset {
                name: "ucs2",
                codec: Codec::Utf16Be,
            },
            "utf16le" => Charset {
                name: "utf16le",
                codec: Codec::Utf16Le,
            },
            "utf32" => Charset {
                name: "utf32",
                codec: Codec::Utf32Be,
            },
            "swe7" => Charset {
                name: "swe7",
                codec: Codec::Table {
                    high: &SWE7,
                    low: Some(&SWE7_LOW),
                },
            },
            "armscii8" => t("armscii8", &ARMSCII8),
            "ascii" => t("ascii", &ASCII),
            "cp1250" => t("cp1250", &CP1250),
            "cp1251" => t("cp1251", &CP1251),
            "cp1256" => t("cp1256", &CP1256),
            "cp1257" => t("cp1257", &CP1257),
            "cp850" => t("cp850", &CP850),
            "cp852" => t("cp852", &CP852),
            "cp866" => t("cp866", &CP866),
            "dec8" => t("dec8", &DEC8),
            "geostd8" => t("geostd8", &GEOSTD8),
            "greek" => t("greek", &GREEK),
            "hebrew" => t("hebrew", &HEBREW),
            "hp8" => t("hp8", &HP8),
            "keybcs2" => t("keybcs2", &KEYBCS2),
            "koi8r" => t("koi8r", &KOI8R),
            "koi8u" => t("koi8u", &KOI8U),
            "latin1" => t("latin1", &LATIN1),
            "latin2" => t("latin2", &LATIN2),
            "latin5" => t("latin5", &LATIN5),
            "latin7" => t("latin7", &LATIN7),
            "macce" => t("macce", &MACCE),
            "macroman" => t("macroman", &MACROMAN),
            "tis620" => t("tis620", &TIS620),
            "sjis" => w("sjis", SHIFT_JIS, ShiftJis, SJIS_OVERRIDES),
            "cp932" => w("cp932", SHIFT_JIS, ShiftJis, &[]),
            "ujis" => w("ujis", EUC_JP, EucJp, UJIS_OVERRIDES),
            "eucjpms" => w("eucjpms", EUC_JP, EucJp, EUCJPMS_OVERRIDES),
            "gbk" => w("gbk", GBK, DoubleByte, &[]),
            "gb2312" => w("gb2312", GBK, DoubleByte, GB2312_OVERRIDES),
            "big5" => w("big5", BIG5, DoubleByte, BIG5_OVERRIDES),
            "euckr" => w("euckr", EUC_KR, DoubleByte, &[]),
            other => Charset {
                name: leak_name(other),
                codec: Codec::Unsupported,
            },
        }
    }

    /// The character set's MySQL name, for messages.
    pub(crate) fn name(&self) -> String {
        match self.codec {
            Codec::UnknownCollation(id) => format!("unknown collation id {id}"),
            _ => self.name.to_owned(),
        }
    }

    /// False for a character set Sluice cannot decode.
    pub fn is_supported(&self) -> bool {
        !matches!(self.codec, Codec::Unsupported | Codec::UnknownCollation(_))
    }

    /// True for the `binary` character set, whose values are published as base64.
    pub(crate) fn is_binary(&self) -> bool {
        self.codec == Codec::Binary
    }

    /// Decodes one value. `Text::Bytes` means "publish the bytes" (binary, or no metadata and not
    /// UTF-8).
    #[inline]
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Text, InvalidText> {
        Ok(Text::String(match self.codec {
            Codec::Binary => return Ok(Text::Bytes),
            Codec::Unknown => match std::str::from_utf8(bytes) {
                Ok(s) => s.to_owned(),
                Err(_) => return Ok(Text::Bytes),
            },
            Codec::Utf8 => std::str::from_utf8(bytes)
                .map_err(|_| InvalidText)?
                .to_owned(),
            Codec::Utf16Be => utf16(bytes, u16::from_be_bytes)?,
            Codec::Utf16Le => utf16(bytes, u16::from_le_bytes)?,
            Codec::Utf32Be => utf32(bytes)?,
            Codec::Table { high, low } => single_byte(bytes, high, low)?,
            Codec::Multi {
                enc,
                seq,
                overrides,
            } => multi_byte(bytes, enc, seq, overrides)?,
            Codec::Unsupported | Codec::UnknownCollation(_) => return Err(InvalidText),
        }))
    }

    /// Decodes a label (ENUM/SET values in TABLE_MAP metadata) to a string.
    pub(crate) fn decode_label(&self, bytes: &[u8]) -> Result<String, InvalidText> {
        match self.decode(bytes)? {
            Text::String(s) => Ok(s),
            Text::Bytes => String::from_utf8(bytes.to_vec()).map_err(|_| InvalidText),
        }
    }
}

/// Character set names that are not known here are rare and few per process (one per unknown
/// name seen in a catalog); keeping them `'static` keeps [`Charset`] `Copy`.
fn leak_name(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

fn single_byte(
    bytes: &[u8],
    high: &[u16; 128],
    low: Option<&[u16; 128]>,
) -> Result<String, InvalidText> {
    if low.is_none() && bytes.is_ascii() {
        // ASCII is the same in every table without a `low` half.
        return Ok(std::str::from_utf8(bytes)
            .map_err(|_| InvalidText)?
            .to_owned());
    }
    let mut s = String::with_capacity(bytes.len() + bytes.len() / 2);
    for &b in bytes {
        let cp = match (b < 0x80, low) {
            (true, None) => u16::from(b),
            (true, Some(low)) => low[b as usize],
            (false, _) => high[(b - 0x80) as usize],
        };
        // Every table entry is a BMP scalar value or the 0xFFFF marker.
        s.push(
            char::from_u32(u32::from(cp))
                .filter(|_| cp != 0xFFFF)
                .ok_or(InvalidText)?,
        );
    }
    Ok(s)
}

/// A multi-byte set: `encoding_rs` decodes, except the codes in `overrides`. The common case
/// (no override in the value) is one `encoding_rs` call; otherwise the runs between overridden
/// characters are decoded one call each.
fn multi_byte(
    bytes: &[u8],
    enc: &'static Encoding,
    seq: Seq,
    overrides: &[(u32, u16, u32)],
) -> Result<String, InvalidText> {
    fn whatwg<'b>(
        enc: &'static Encoding,
        b: &'b [u8],
    ) -> Result<std::borrow::Cow<'b, str>, InvalidText> {
        enc.decode_without_bom_handling_and_without_replacement(b)
            .ok_or(InvalidText)
    }
    let lookup = |code: u32| -> Option<char> {
        let i = overrides.partition_point(|&(start, _, _)| start <= code);
        let &(start, count, first) = overrides.get(i.checked_sub(1)?)?;
        (code - start < u32::from(count)).then(|| char::from_u32(first + (code - start)))?
    };
    // Walk the characters; `None` until the first overridden one.
    let mut out: Option<String> = None;
    let (mut i, mut run) = (0usize, 0usize);
    while i < bytes.len() {
        let n = seq.len(bytes[i]).min(bytes.len() - i);
        if n > 1 && !overrides.is_empty() {
            let code = bytes[i..i + n]
                .iter()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            if let Some(c) = lookup(code) {
                let s = out.get_or_insert_with(|| String::with_capacity(bytes.len() * 2));
                s.push_str(&whatwg(enc, &bytes[run..i])?);
                s.push(c);
                run = i + n;
            }
        }
        i += n;
    }
    match out {
        None => Ok(whatwg(enc, bytes)?.into_owned()),
        Some(mut s) => {
            s.push_str(&whatwg(enc, &bytes[run..])?);
            Ok(s)
        }
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, InvalidText> {
    if !bytes.len().is_multiple_of(2) {
        return Err(InvalidText);
    }
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    let mut s = String::with_capacity(bytes.len());
    for c in char::decode_utf16(units) {
        s.push(c.map_err(|_| InvalidText)?);
    }
    Ok(s)
}

fn utf32(bytes: &[u8]) -> Result<String, InvalidText> {
    if !bytes.len().is_multiple_of(4) {
        return Err(InvalidText);
    }
    let mut s = String::with_capacity(bytes.len());
    for c in bytes.chunks_exact(4) {
        let cp = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        s.push(char::from_u32(cp).ok_or(InvalidText)?);
    }
    Ok(s)
}

/// The character set of a collation id, as MariaDB 10.11 (and, for `utf8mb4_0900_*`, MySQL 8.0)
/// defines it; `None` for an id that neither uses.
pub fn charset_name_for_collation(id: u16) -> Option<&'static str> {
    Some(match id {
        1 | 84 | 1025 | 1108 => "big5",
        2 | 9 | 21 | 27 | 77 | 1033 | 1101 => "latin2",
        3 | 69 | 1027 | 1093 => "dec8",
        4 | 80 | 1028 | 1104 => "cp850",
        5 | 8 | 15 | 31 | 47..=49 | 94 | 1032 | 1071 => "latin1",
        6 | 72 | 1030 | 1096 => "hp8",
        7 | 74 | 1031 | 1098 => "koi8r",
        10 | 82 | 1034 | 1106 => "swe7",
        11 | 65 | 1035 | 1089 => "ascii",
        12 | 91 | 1036 | 1115 => "ujis",
        13 | 88 | 1037 | 1112 => "sjis",
        14 | 23 | 50..=52 | 1074..=1075 => "cp1251",
        16 | 71 | 1040 | 1095 => "hebrew",
        18 | 89 | 1042 | 1113 => "tis620",
        19 | 85 | 1043 | 1109 => "euckr",
        20 | 41..=42 | 79 | 1065 | 1103 => "latin7",
        22 | 75 | 1046 | 1099 => "koi8u",
        24 | 86 | 1048 | 1110 => "gb2312",
        25 | 70 | 1049 | 1094 => "greek",
        26 | 34 | 44 | 66 | 99 | 1050 | 1090 => "cp1250",
        28 | 87 | 1052 | 1111 => "gbk",
        29 | 58..=59 | 1082..=1083 => "cp1257",
        30 | 78 | 1054 | 1102 => "latin5",
        32 | 64 | 1056 | 1088 => "armscii8",
        33
        | 83
        | 192..=215
        | 223
        | 576..=578
        | 1057
        | 1107
        | 1216
        | 1238
        | 2048..=2215
        | 2232..=2247 => "utf8mb3",
        35
        | 90
        | 128..=151
        | 159
        | 640..=642
        | 1059
        | 1114
        | 1152
        | 1174
        | 2560..=2727
        | 2744..=2759 => "ucs2",
        36 | 68 | 1060 | 1092 => "cp866",
        37 | 73 | 1061 | 1097 => "keybcs2",
        38 | 43 | 1062 | 1067 => "macce",
        39 | 53 | 1063 | 1077 => "macroman",
        40 | 81 | 1064 | 1105 => "cp852",
        45..=46 | 224..=247 | 608..=610 | 1069..=1070 | 1248 | 1270 | 2304..=2471 | 2488..=2503 => {
            "utf8mb4"
        }
        54..=55 | 101..=124 | 672..=674 | 1078..=1079 | 1125 | 1147 | 2816..=2983 | 3000..=3015 => {
            "utf16"
        }
        56 | 62 | 1080 | 1086 => "utf16le",
        57 | 67 | 1081 | 1091 => "cp1256",
        60..=61 | 160..=183 | 736..=738 | 1084..=1085 | 1184 | 1206 | 3072..=3239 | 3256..=3271 => {
            "utf32"
        }
        63 => "binary",
        92..=93 | 1116..=1117 => "geostd8",
        95..=96 | 1119..=1120 => "cp932",
        97..=98 | 1121..=1122 => "eucjpms",
        // MySQL 8.0's utf8mb4_0900_* family; MariaDB has no collation with these ids.
        255..=323 => "utf8mb4",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(cs: &str, bytes: &[u8]) -> Result<String, InvalidText> {
        match Charset::from_name(Some(cs)).decode(bytes)? {
            Text::String(s) => Ok(s),
            Text::Bytes => panic!("{cs} gave bytes"),
        }
    }

    #[test]
    fn strict_decoding_never_replaces() {
        assert_eq!(
            text("cp1251", b"\xcf\xf0\xe8\xe2\xe5\xf2"),
            Ok("Привет".into())
        );
        assert_eq!(text("utf16", b"\x04\x1f\x00!"), Ok("П!".into()));
        assert_eq!(text("utf16le", b"\x1f\x04"), Ok("П".into()));
        assert_eq!(text("utf32", b"\x00\x01\xf9\x80"), Ok("🦀".into()));
        // Invalid input is an error, not U+FFFD.
        assert_eq!(text("utf8mb4", b"\xff"), Err(InvalidText));
        assert_eq!(text("ascii", b"\x80"), Err(InvalidText));
        assert_eq!(text("utf16", b"\xd8\x00"), Err(InvalidText));
        assert_eq!(text("utf32", b"\x00\x11\x00\x00"), Err(InvalidText));
        assert_eq!(text("sjis", b"\x81"), Err(InvalidText));
        // cp1251 has no character at 0x98.
        assert_eq!(text("cp1251", b"\x98"), Err(InvalidText));
    }

    #[test]
    fn overrides_apply_inside_longer_text() {
        // sjis 0x815F is a backslash in MariaDB, U+FF3C in WHATWG Shift_JIS.
        assert_eq!(text("sjis", b"a\x81\x5f\x93\xfa"), Ok("a\\日".into()));
        assert_eq!(text("cp932", b"\x81\x5f"), Ok("＼".into()));
    }

    #[test]
    fn unknown_ids_and_names_are_refused_by_name() {
        let c = Charset::from_collation_id(17);
        assert!(!c.is_supported());
        assert_eq!(c.name(), "unknown collation id 17");
        let c = Charset::from_name(Some("gb18030"));
        assert!(!c.is_supported());
        assert_eq!(c.name(), "gb18030");
        assert_eq!(charset_name_for_collation(255), Some("utf8mb4"));
        assert_eq!(charset_name_for_collation(63), Some("binary"));
    }
}
