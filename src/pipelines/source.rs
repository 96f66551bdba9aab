//! Reading landing files: list them per entity, stream their bytes, and turn
//! CSV or JSON Lines records into one optional cell per contract column.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::value::RawValue;

use crate::contract::Entity;
use crate::lake::Location;

/// Most columns any entity has (policies).
pub const MAX_COLUMNS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// One landing file to ingest.
#[derive(Debug, Clone)]
pub struct LandingFile {
    pub entity: Entity,
    pub path: Path,
    /// Relative to the landing root, e.g. `commissions/2024-01.csv`.
    pub name: String,
    pub size: u64,
    /// `None` for a file whose type is not supported.
    pub format: Option<Format>,
}

/// Every file under the entity folders of `landing`, entities in contract
/// order and files by name, so that "later file wins" is well defined.
pub async fn list(landing: &Location) -> Result<Vec<LandingFile>, object_store::Error> {
    let mut files = Vec::new();
    for entity in Entity::ALL {
        let dir = landing.child(entity.name());
        let mut metas: Vec<_> = landing.store.list(Some(&dir)).try_collect().await?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        for m in metas {
            let name = landing.relative(&m.location);
            let lower = name.to_ascii_lowercase();
            let format = if lower.ends_with(".csv") {
                Some(Format::Csv)
            } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
                Some(Format::Jsonl)
            } else {
                None
            };
            // Hidden and temporary files (e.g. `.part` uploads) are not deliveries.
            if m.location.filename().is_some_and(|f| f.starts_with('.') || f.starts_with('_')) {
                continue;
            }
            files.push(LandingFile { entity, path: m.location, name, size: m.size, format });
        }
    }
    Ok(files)
}

/// Counts bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    on_bytes: Box<dyn Fn(u64) + Send>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

/// Open a landing file for streaming reads. Local files are read directly
/// (no hand-off between threads per chunk); other stores through
/// [`ObjectReader`].
pub fn open(
    landing: &Location,
    path: &Path,
    on_bytes: Box<dyn Fn(u64) + Send>,
    handle: &tokio::runtime::Handle,
) -> io::Result<Box<dyn Read + Send>> {
    if landing.store_url.scheme() == "file" {
        // Object paths are percent-encoded; the URL form decodes them.
        let local = url::Url::parse(&format!("file:///{path}"))
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| io::Error::other(format!("not a local path: {path}")))?;
        let file = std::fs::File::open(local)?;
        return Ok(Box::new(Counting { inner: BufReader::with_capacity(1 << 20, file), on_bytes }));
    }
    let _guard = handle.enter();
    Ok(Box::new(ObjectReader::open(landing.store.clone(), path.clone(), on_bytes)))
}

/// A blocking `Read` over an object's byte stream, fed by an async task, so
/// that a file is parsed as it arrives and never held whole in memory.
pub struct ObjectReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    on_bytes: Box<dyn Fn(u64) + Send>,
}

impl ObjectReader {
    /// Start streaming `path`; must be called inside a tokio runtime.
    pub fn open(store: Arc<dyn ObjectStore>, path: Path, on_bytes: Box<dyn Fn(u64) + Send>) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut stream = match store.get(&path).await {
                Ok(r) => r.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e))).await;
                    return;
                }
            };
            while let Some(chunk) = stream.next().await {
                if tx.send(chunk.map_err(io::Error::other)).await.is_err() {
                    return;
                }
            }
        });
        ObjectReader { rx, current: Bytes::new(), on_bytes }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => {
                    (self.on_bytes)(b.len() as u64);
                    self.current = b;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// One record of a landing file, mapped onto the contract's columns.
pub struct Record<'a> {
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// One cell per contract column, `None` where absent or null.
    pub cells: &'a [Option<&'a str>],
    /// The record as a JSON object, for the rejected-records store (built
    /// only when a record is rejected).
    pub raw: &'a dyn Fn() -> String,
}

/// What a record reader hands to its caller.
pub enum Item<'a> {
    Record(Record<'a>),
    /// A record that could not be read as one (wrong field count, bad JSON):
    /// its line, why, the raw text and the tenant if it could be seen.
    Malformed {
        line: u64,
        reason: String,
        raw: String,
        tenant: Option<String>,
    },
}

/// Why a CSV file's header row rules the whole file out. Checked once,
/// where the header is read, before any record: none of the file is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No header row at all (a 0-byte file, or only blank lines).
    #[error("header missing: the file is empty")]
    Missing,
    /// Header field `field` (1-based) is not valid UTF-8; `missing` are the
    /// required columns that no header field names, in contract order.
    #[error("header is not valid UTF-8 (field {field}){}", lacks_suffix(.missing))]
    NotUtf8 { field: usize, missing: Vec<&'static str> },
    /// Required columns of the entity that no header field names, in
    /// contract order.
    #[error("header lacks required columns: {}", .0.join(", "))]
    MissingColumns(Vec<&'static str>),
}

fn lacks_suffix(missing: &[&str]) -> String {
    if missing.is_empty() { String::new() } else { format!("; header lacks required columns: {}", missing.join(", ")) }
}

/// Why a landing file as a whole could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Header(#[from] HeaderError),
}

/// The header's names (trimmed, first one without a byte-order mark), once
/// every field is UTF-8 and every required column of `entity` is named.
/// Unknown extra columns are allowed (ignored when mapping).
fn header_names(rec: &csv::ByteRecord, entity: Entity) -> Result<Vec<String>, HeaderError> {
    let not_utf8 = rec.iter().position(|h| std::str::from_utf8(h).is_err()).map(|i| i + 1);
    let headers: Vec<String> = rec
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = String::from_utf8_lossy(h);
            let h = if i == 0 { h.trim_start_matches('\u{feff}') } else { &h };
            h.trim().to_string()
        })
        .collect();
    let missing: Vec<&'static str> = entity
        .columns()
        .iter()
        .filter(|c| c.required && !headers.iter().any(|h| h == c.name))
        .map(|c| c.name)
        .collect();
    match not_utf8 {
        Some(field) => Err(HeaderError::NotUtf8 { field, missing }),
        None if !missing.is_empty() => Err(HeaderError::MissingColumns(missing)),
        None => Ok(headers),
    }
}

/// Read a CSV file with a header row; `each` is called per record. A header
/// that does not fit the contract ([`HeaderError`]) fails the file before
/// any record is handed to `each`.
pub fn read_csv<R: Read, E>(
    input: R,
    entity: Entity,
    mut each: impl FnMut(Item<'_>) -> Result<(), E>,
) -> Result<Result<(), E>, ReadError> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
    let mut rec = csv::ByteRecord::new();
    if !rdr.read_byte_record(&mut rec).map_err(csv_io)? {
        return Err(HeaderError::Missing.into());
    }
    let headers = header_names(&rec, entity)?;
    let mapping: Vec<Option<usize>> =
        entity.columns().iter().map(|c| headers.iter().position(|h| h == c.name)).collect();
    let tenant_at = mapping[0];
    while rdr.read_byte_record(&mut rec).map_err(csv_io)? {
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let raw = || csv_record_json(&headers, &rec);
        if rec.len() != headers.len() {
            let tenant = tenant_at.and_then(|i| rec.get(i)).map(|t| String::from_utf8_lossy(t).trim().to_string());
            let reason = format!("expected {} fields as in the header, found {}", headers.len(), rec.len());
            if let Err(e) = each(Item::Malformed { line, reason, raw: raw(), tenant }) {
                return Ok(Err(e));
            }
            continue;
        }
        let mut cells: [Option<&str>; MAX_COLUMNS] = [None; MAX_COLUMNS];
        // One UTF-8 check for the whole record; fields are slices of it.
        let item = match std::str::from_utf8(rec.as_slice()) {
            Ok(all) => {
                for (cell, col) in cells.iter_mut().zip(&mapping) {
                    *cell = col.and_then(|i| rec.range(i)).map(|r| &all[r]);
                }
                Item::Record(Record { line, cells: &cells[..entity.columns().len()], raw: &raw })
            }
            Err(_) => {
                let bad = rec.iter().position(|f| std::str::from_utf8(f).is_err()).unwrap_or(0);
                let tenant = tenant_at.and_then(|i| rec.get(i)).map(|t| String::from_utf8_lossy(t).trim().to_string());
                let reason = format!("{}: not valid UTF-8", headers.get(bad).map(String::as_str).unwrap_or("?"));
                Item::Malformed { line, reason, raw: raw(), tenant }
            }
        };
        if let Err(e) = each(item) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
    }
}

fn csv_record_json(headers: &[String], rec: &csv::ByteRecord) -> String {
    let obj: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .zip(rec.iter())
        .map(|(h, v)| (h.clone(), serde_json::Value::String(String::from_utf8_lossy(v).into_owned())))
        .collect();
    serde_json::Value::Object(obj).to_string()
}

/// Read a JSON Lines file; blank lines are skipped.
pub fn read_jsonl<R: Read, E>(
    input: R,
    entity: Entity,
    mut each: impl FnMut(Item<'_>) -> Result<(), E>,
) -> Result<Result<(), E>, io::Error> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut text = String::new();
    let mut line = 0u64;
    loop {
        text.clear();
        let n = reader.read_line(&mut text)?;
        if n == 0 {
            return Ok(Ok(()));
        }
        line += 1;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let raw = || trimmed.to_string();
        let item = match json_cells(trimmed, entity) {
            Ok(owned) => {
                let mut cells: [Option<&str>; MAX_COLUMNS] = [None; MAX_COLUMNS];
                for (cell, v) in cells.iter_mut().zip(&owned) {
                    *cell = v.as_deref();
                }
                let r = each(Item::Record(Record { line, cells: &cells[..entity.columns().len()], raw: &raw }));
                if let Err(e) = r {
                    return Ok(Err(e));
                }
                continue;
            }
            Err((reason, tenant)) => Item::Malformed { line, reason, raw: raw(), tenant },
        };
        if let Err(e) = each(item) {
            return Ok(Err(e));
        }
    }
}

/// Why a JSON line is not a record, and its tenant if it could be seen.
pub(crate) type JsonLineError = (String, Option<String>);

/// The raw JSON value of each wanted field of one JSON object, by the
/// index `field` gives its name (`None`: not wanted). A repeated name keeps
/// its last value. Nothing is allocated: a name is compared where it lies
/// and a value is a slice of `text`, so a line costs one pass of the parser.
pub(crate) fn json_fields(
    text: &str,
    field: impl Fn(&str) -> Option<usize>,
) -> Result<[Option<&RawValue>; MAX_COLUMNS], serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = Fields(&field).deserialize(&mut de)?;
    de.end()?;
    Ok(fields)
}

struct Fields<'f, F>(&'f F);

impl<'de, F: Fn(&str) -> Option<usize>> serde::de::DeserializeSeed<'de> for Fields<'_, F> {
    type Value = [Option<&'de RawValue>; MAX_COLUMNS];

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: Fn(&str) -> Option<usize>> serde::de::Visitor<'de> for Fields<'_, F> {
    type Value = [Option<&'de RawValue>; MAX_COLUMNS];

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = [None; MAX_COLUMNS];
        while let Some(i) = map.next_key_seed(FieldIndex(self.0))? {
            let value: &'de RawValue = map.next_value()?;
            if let Some(i) = i.filter(|i| *i < MAX_COLUMNS) {
                out[i] = Some(value);
            }
        }
        Ok(out)
    }
}

/// A key of the object, as the index of the field it names.
struct FieldIndex<'f, F>(&'f F);

impl<'de, F: Fn(&str) -> Option<usize>> serde::de::DeserializeSeed<'de> for FieldIndex<'_, F> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, F: Fn(&str) -> Option<usize>> serde::de::Visitor<'de> for FieldIndex<'_, F> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((self.0)(v))
    }
}

/// The index of `name` among `entity`'s columns.
pub(crate) fn column_index(entity: Entity) -> impl Fn(&str) -> Option<usize> {
    move |name| entity.columns().iter().position(|c| c.name == name)
}

/// One field's raw JSON value as a cell: a string's text (borrowed unless
/// it has escapes), a number's literal text (never through a float), `null`
/// or absent as no value; an object or array is refused.
pub(crate) fn json_cell<'a>(name: &str, raw: Option<&'a RawValue>) -> Result<Option<Cow<'a, str>>, String> {
    let Some(s) = raw.map(RawValue::get) else { return Ok(None) };
    match s.as_bytes().first() {
        _ if s == "null" => Ok(None),
        Some(b'"') if !s.contains('\\') => Ok(Some(Cow::Borrowed(&s[1..s.len() - 1]))),
        Some(b'"') => serde_json::from_str::<String>(s)
            .map(|v| Some(Cow::Owned(v)))
            .map_err(|e| format!("{name}: bad string: {e}")),
        Some(b'{' | b'[') => Err(format!("{name}: must be a string, not an object or array")),
        _ => Ok(Some(Cow::Borrowed(s))),
    }
}

/// Cells of one JSON object, one per column of `entity`.
pub(crate) fn json_cells(text: &str, entity: Entity) -> Result<Vec<Option<Cow<'_, str>>>, JsonLineError> {
    let fields = json_fields(text, column_index(entity)).map_err(|e| (format!("not a JSON object: {e}"), None))?;
    // Every entity's first column is its tenant.
    let tenant = || json_cell("tenant_id", fields[0]).ok().flatten().map(Cow::into_owned);
    entity.columns().iter().zip(fields).map(|(c, raw)| json_cell(c.name, raw).map_err(|why| (why, tenant()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_csv(text: impl AsRef<[u8]>) -> Vec<(u64, Vec<Option<String>>)> {
        let mut out = Vec::new();
        read_csv::<_, ()>(text.as_ref(), Entity::Carriers, |item| {
            match item {
                Item::Record(r) => out.push((r.line, r.cells.iter().map(|c| c.map(str::to_string)).collect())),
                Item::Malformed { line, reason, .. } => out.push((line, vec![Some(format!("malformed: {reason}"))])),
            }
            Ok(())
        })
        .unwrap()
        .unwrap();
        out
    }

    #[test]
    fn csv_maps_columns_by_header_name_and_counts_lines() {
        let rows =
            collect_csv("\u{feff}name,carrier_id,extra,tenant_id\nAcme,K1,x,t1\n\"B, Inc\",K2,y,t1\nshort,row\n");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], (2, vec![Some("t1".into()), Some("K1".into()), Some("Acme".into())]));
        assert_eq!(rows[1], (3, vec![Some("t1".into()), Some("K2".into()), Some("B, Inc".into())]));
        assert_eq!(rows[2], (4, vec![Some("malformed: expected 4 fields as in the header, found 2".into())]));
    }

    /// The header error of `text`, checking that no record was handed on.
    fn header_error(entity: Entity, text: &[u8]) -> HeaderError {
        let mut records = 0;
        let err = read_csv::<_, ()>(text, entity, |_| {
            records += 1;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(records, 0, "no record is read from a file with a bad header");
        match err {
            ReadError::Header(e) => e,
            ReadError::Io(e) => panic!("expected a header error, got {e}"),
        }
    }

    #[test]
    fn csv_header_must_name_every_required_column() {
        let header = "tenant_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,agent_commission,agency_commission,status,extra";
        let e = header_error(
            Entity::Commissions,
            format!("{header}\nt1,P1,A1,K1,2024-01-15,new,1,0.1,1,2,,x\n").as_bytes(),
        );
        assert_eq!(e, HeaderError::MissingColumns(vec!["commission_id", "gross_commission"]));
        assert_eq!(e.to_string(), "header lacks required columns: commission_id, gross_commission");
        // Optional columns may be absent and unknown ones present.
        assert_eq!(collect_csv("tenant_id,carrier_id,name,x\nt1,K1,Acme,y\n").len(), 1);
    }

    #[test]
    fn csv_header_must_be_utf8_and_present() {
        // UTF-16 (as some spreadsheets export): not UTF-8, names unreadable.
        let e = header_error(Entity::Carriers, b"\xff\xfet\x00e\x00n\x00\n\x00");
        assert_eq!(e, HeaderError::NotUtf8 { field: 1, missing: vec!["tenant_id", "carrier_id", "name"] });
        assert_eq!(
            e.to_string(),
            "header is not valid UTF-8 (field 1); header lacks required columns: tenant_id, carrier_id, name"
        );
        let e = header_error(Entity::Carriers, b"tenant_id,carrier_id,name,libell\xe9\nt1,K1,Acme,x\n");
        assert_eq!(e.to_string(), "header is not valid UTF-8 (field 4)");
        for empty in [&b""[..], b"\n\r\n"] {
            assert_eq!(header_error(Entity::Carriers, empty), HeaderError::Missing);
        }
        assert_eq!(HeaderError::Missing.to_string(), "header missing: the file is empty");
    }

    #[test]
    fn jsonl_takes_numbers_literally_and_null_as_absent() {
        let text = "{\"tenant_id\":\"t1\",\"carrier_id\":\"K1\",\"name\":null}\n\n{\"tenant_id\":\"t1\",\"carrier_id\":12.50,\"name\":\"X\"}\nnot json\n";
        let mut out = Vec::new();
        read_jsonl::<_, ()>(text.as_bytes(), Entity::Carriers, |item| {
            match item {
                Item::Record(r) => out.push((r.line, format!("{:?}", r.cells))),
                Item::Malformed { line, .. } => out.push((line, "malformed".into())),
            }
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            vec![
                (1, "[Some(\"t1\"), Some(\"K1\"), None]".to_string()),
                (3, "[Some(\"t1\"), Some(\"12.50\"), Some(\"X\")]".to_string()),
                (4, "malformed".to_string()),
            ]
        );
    }

    #[test]
    fn json_fields_borrow_plain_strings_unescape_the_others_and_keep_the_last_repeat() {
        let text =
            r#"{"name":"A \"B\"","x":{"deep":[1,{"name":"no"}]},"carrier_id":"K1","tenant_id":"t1","carrier_id":"K2"}"#;
        let cells = json_cells(text, Entity::Carriers).unwrap();
        assert_eq!(cells, vec![Some("t1".into()), Some("K2".into()), Some("A \"B\"".into())]);
        assert!(matches!(cells[1], Some(Cow::Borrowed(_))), "a string without escapes is not copied");
        assert!(matches!(cells[2], Some(Cow::Owned(_))));
        // A nested value in a column names the column and the line's tenant.
        let (why, tenant) = json_cells(r#"{"tenant_id":"t9","name":{"a":1}}"#, Entity::Carriers).unwrap_err();
        assert_eq!((why.as_str(), tenant.as_deref()), ("name: must be a string, not an object or array", Some("t9")));
        let (why, tenant) = json_cells("[1,2]", Entity::Carriers).unwrap_err();
        assert_eq!(why, "not a JSON object: invalid type: sequence, expected a map at line 1 column 0");
        assert_eq!(tenant, None);
        assert!(
            json_cells(r#"{"tenant_id":"t1"} x"#, Entity::Carriers)
                .unwrap_err()
                .0
                .starts_with("not a JSON object: trailing")
        );
    }
}
