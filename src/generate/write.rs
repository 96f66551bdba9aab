//! Row buffers, value formatting and the per-entity file sinks (CSV / JSONL,
//! chunked files, physical line numbers, bad-row injection).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};

use crate::generate::Format;
use crate::generate::bad_rows::{self, EntitySpec, Reason};
use crate::generate::rng::Rng;

/// Maximum rows (bad rows included) in one landing file.
pub const CHUNK_ROWS: usize = 100_000;

/// One row as a single string buffer with field boundaries: no allocation
/// per field. An empty field means "no value".
#[derive(Default)]
pub struct Row {
    buf: String,
    ends: Vec<usize>,
}

impl Row {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    fn end_field(&mut self) {
        self.ends.push(self.buf.len());
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.buf.push_str(s);
        self.end_field();
        self
    }

    pub fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        if let Some(s) = s {
            self.buf.push_str(s);
        }
        self.end_field();
        self
    }

    pub fn empty(&mut self) -> &mut Self {
        self.end_field();
        self
    }

    /// Appends formatted text as one field.
    pub fn fmt(&mut self, args: std::fmt::Arguments<'_>) -> &mut Self {
        use std::fmt::Write as _;
        self.buf.write_fmt(args).expect("write to String");
        self.end_field();
        self
    }

    pub fn date(&mut self, d: NaiveDate) -> &mut Self {
        push_date(&mut self.buf, d);
        self.end_field();
        self
    }

    pub fn opt_date(&mut self, d: Option<NaiveDate>) -> &mut Self {
        if let Some(d) = d {
            push_date(&mut self.buf, d);
        }
        self.end_field();
        self
    }

    pub fn cents(&mut self, c: i64) -> &mut Self {
        push_cents(&mut self.buf, c);
        self.end_field();
        self
    }

    /// A rate given in millionths, written without trailing zeros ("0.125").
    pub fn rate_micro(&mut self, r: u32) -> &mut Self {
        push_rate_micro(&mut self.buf, r);
        self.end_field();
        self
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn field(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    pub fn to_vec(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.field(i).to_string()).collect()
    }
}

pub fn push_date(buf: &mut String, d: NaiveDate) {
    use std::fmt::Write as _;
    write!(buf, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()).expect("write to String");
}

pub fn fmt_date(d: NaiveDate) -> String {
    let mut s = String::with_capacity(10);
    push_date(&mut s, d);
    s
}

/// Money from integer cents, always with exactly two fraction digits.
pub fn push_cents(buf: &mut String, c: i64) {
    use std::fmt::Write as _;
    let neg = c < 0;
    let a = c.unsigned_abs();
    if neg {
        buf.push('-');
    }
    write!(buf, "{}.{:02}", a / 100, a % 100).expect("write to String");
}

pub fn fmt_cents(c: i64) -> String {
    let mut s = String::new();
    push_cents(&mut s, c);
    s
}

pub fn push_rate_micro(buf: &mut String, r: u32) {
    use std::fmt::Write as _;
    let int = r / 1_000_000;
    let mut frac = r % 1_000_000;
    if frac == 0 {
        write!(buf, "{int}").expect("write to String");
        return;
    }
    let mut width = 6;
    while frac.is_multiple_of(10) {
        frac /= 10;
        width -= 1;
    }
    write!(buf, "{int}.{frac:0width$}").expect("write to String");
}

fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Encodes one record (CSV line or JSON object line, newline included).
pub fn encode<'a>(out: &mut Vec<u8>, format: Format, columns: &[&str], fields: impl Iterator<Item = &'a str>) {
    match format {
        Format::Csv => {
            for (i, f) in fields.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                csv_field(out, f);
            }
        }
        Format::Jsonl => {
            out.push(b'{');
            for (i, f) in fields.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(out, columns[i]);
                out.push(b':');
                if f.is_empty() {
                    out.extend_from_slice(b"null");
                } else {
                    json_string(out, f);
                }
            }
            out.push(b'}');
        }
    }
    out.push(b'\n');
}

/// The truth file of rejected rows, plus counts per reason.
pub struct Rejects {
    out: BufWriter<File>,
    pub by_reason: [u64; 6],
}

impl Rejects {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(b"entity,file,line,reason_code\n")?;
        Ok(Rejects { out, by_reason: [0; 6] })
    }

    fn record(&mut self, entity: &str, file: &str, line: u64, reason: Reason) -> std::io::Result<()> {
        self.by_reason[reason as usize] += 1;
        writeln!(self.out, "{entity},{file},{line},{}", reason.code())
    }

    pub fn finish(mut self) -> std::io::Result<[u64; 6]> {
        self.out.flush()?;
        Ok(self.by_reason)
    }
}

/// Writes the rows of one entity into `<landing>/<entity>/<entity>-<group>-<n>.<ext>`.
pub struct Sink {
    pub spec: &'static EntitySpec,
    root: PathBuf,
    format: Format,
    file: Option<BufWriter<File>>,
    rel: String,
    group: String,
    chunk: u32,
    rows_in_file: usize,
    line_no: u64,
    /// Duplicate-key copies waiting to be written later in the same file:
    /// (row count in file at which to write, fields).
    pending: Vec<(usize, Vec<String>)>,
    rng: Rng,
    rate: f64,
    fresh: u64,
    enc: Vec<u8>,
    pub written: u64,
    pub bad: u64,
    pub files: u64,
}

impl Sink {
    pub fn new(spec: &'static EntitySpec, landing: &Path, format: Format, seed: u64, rate: f64) -> Self {
        Sink {
            spec,
            root: landing.to_path_buf(),
            format,
            file: None,
            rel: String::new(),
            group: String::new(),
            chunk: 0,
            rows_in_file: 0,
            line_no: 0,
            pending: Vec::new(),
            rng: Rng::stream(seed, spec.name, 0xBAD),
            rate,
            fresh: 0,
            enc: Vec::with_capacity(512),
            written: 0,
            bad: 0,
            files: 0,
        }
    }

    fn ext(&self) -> &'static str {
        match self.format {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    fn close(&mut self, rejects: &mut Rejects) -> std::io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        for (_, fields) in pending {
            self.emit_bad(&fields, Reason::DuplicateKeyConflict, rejects)?;
        }
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        Ok(())
    }

    fn open(&mut self, group: &str, rejects: &mut Rejects) -> std::io::Result<()> {
        self.close(rejects)?;
        if self.group != group {
            self.group = group.to_string();
            self.chunk = 0;
        }
        self.chunk += 1;
        self.rel = format!(
            "{name}/{name}-{group}-{chunk:04}.{ext}",
            name = self.spec.name,
            chunk = self.chunk,
            ext = self.ext()
        );
        let path = self.root.join(&self.rel);
        let mut f = BufWriter::with_capacity(1 << 18, File::create(&path)?);
        self.line_no = 0;
        self.rows_in_file = 0;
        if self.format == Format::Csv {
            self.enc.clear();
            let cols = self.spec.columns;
            encode(&mut self.enc, Format::Csv, cols, cols.iter().copied());
            f.write_all(&self.enc)?;
            self.line_no = 1;
        }
        self.file = Some(f);
        self.files += 1;
        Ok(())
    }

    fn emit<'a>(&mut self, fields: impl Iterator<Item = &'a str>) -> std::io::Result<()> {
        self.enc.clear();
        encode(&mut self.enc, self.format, self.spec.columns, fields);
        self.file.as_mut().expect("open file").write_all(&self.enc)?;
        self.line_no += 1;
        self.rows_in_file += 1;
        self.written += 1;
        Ok(())
    }

    fn emit_bad(&mut self, fields: &[String], reason: Reason, rejects: &mut Rejects) -> std::io::Result<()> {
        self.emit(fields.iter().map(|s| s.as_str()))?;
        self.bad += 1;
        rejects.record(self.spec.name, &self.rel, self.line_no, reason)
    }

    /// Writes `row` (a valid row) into the file of `group`. With probability
    /// `bad_row_rate` the row is also used for one bad row: a corrupted copy
    /// (fresh key, one defect), a later duplicate-key copy with different
    /// content, or — only where `in_place_ok` — the row itself corrupted.
    pub fn write(&mut self, group: &str, row: &Row, in_place_ok: bool, rejects: &mut Rejects) -> std::io::Result<()> {
        if self.file.is_none() || self.group != group || self.rows_in_file + self.pending.len() + 2 > CHUNK_ROWS {
            self.open(group, rejects)?;
        }
        while let Some(pos) = self.pending.iter().position(|(due, _)| *due <= self.rows_in_file) {
            let (_, fields) = self.pending.remove(pos);
            self.emit_bad(&fields, Reason::DuplicateKeyConflict, rejects)?;
        }
        if self.rate <= 0.0 || !self.rng.chance(self.rate) {
            return self.emit((0..row.len()).map(|i| row.field(i)));
        }
        let fields = row.to_vec();
        let reason = bad_rows::choose_reason(self.spec, &fields, &mut self.rng);
        if reason == Reason::DuplicateKeyConflict {
            let copy = bad_rows::duplicate_conflict(self.spec, &fields);
            self.emit(fields.iter().map(|s| s.as_str()))?;
            let due = self.rows_in_file + self.rng.index(20);
            self.pending.push((due, copy));
            return Ok(());
        }
        if in_place_ok && self.rng.chance(0.5) {
            let mut bad = fields;
            bad_rows::corrupt(self.spec, &mut bad, reason, &mut self.rng);
            return self.emit_bad(&bad, reason, rejects);
        }
        self.emit(fields.iter().map(|s| s.as_str()))?;
        let mut bad = fields;
        self.fresh += 1;
        bad_rows::fresh_key(self.spec, &mut bad, self.fresh);
        bad_rows::corrupt(self.spec, &mut bad, reason, &mut self.rng);
        self.emit_bad(&bad, reason, rejects)
    }

    pub fn finish(mut self, rejects: &mut Rejects) -> std::io::Result<SinkStats> {
        self.close(rejects)?;
        Ok(SinkStats { entity: self.spec.name, written: self.written, bad: self.bad, files: self.files })
    }
}

pub struct SinkStats {
    pub entity: &'static str,
    pub written: u64,
    pub bad: u64,
    pub files: u64,
}

/// Year group of a date, for file names.
pub fn year_group(d: NaiveDate) -> String {
    format!("{:04}", d.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_rates_format_exactly() {
        assert_eq!(fmt_cents(0), "0.00");
        assert_eq!(fmt_cents(5), "0.05");
        assert_eq!(fmt_cents(-5), "-0.05");
        assert_eq!(fmt_cents(-123456), "-1234.56");
        assert_eq!(fmt_cents(120000), "1200.00");
        let mut s = String::new();
        push_rate_micro(&mut s, 125_000);
        s.push('|');
        push_rate_micro(&mut s, 1_000_000);
        s.push('|');
        push_rate_micro(&mut s, 30_000);
        s.push('|');
        push_rate_micro(&mut s, 1_234_567);
        assert_eq!(s, "0.125|1|0.03|1.234567");
    }

    #[test]
    fn encodes_csv_and_jsonl() {
        let cols = ["a", "b", "c"];
        let mut out = Vec::new();
        encode(&mut out, Format::Csv, &cols, ["x", "12,00x", ""].into_iter());
        encode(&mut out, Format::Jsonl, &cols, ["x", "say \"hi\"", ""].into_iter());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x,\"12,00x\",\n{\"a\":\"x\",\"b\":\"say \\\"hi\\\"\",\"c\":null}\n"
        );
    }
}
