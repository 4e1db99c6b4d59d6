//! Tables read from CSV or Parquet files, one typed column at a time.
//!
//! A drift report looks at one column of each table at a time, so a Parquet
//! table is opened once and each column is decoded only when it is asked
//! for ([`Table::column`]); a CSV file has no column layout and is parsed
//! whole when opened. The physical types follow what pandas would make of
//! the same file, because Evidently's column typing depends on them:
//! integers without gaps stay integers, a missing value turns an integer
//! column into floats, and text stays text.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use crate::temporal::{Instants, TemporalScale};

/// Why a table or one of its columns could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path} line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("cannot tell the format of {path}: name it .csv, .tsv or .parquet (a CSV may be compressed: .csv.gz, .csv.bz2, .csv.xz, .csv.zst, .csv.zip, .csv.tar, .csv.tar.gz)")]
    UnknownFormat { path: PathBuf },
    #[error("{path} decompresses to more than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path} has no column '{column}'")]
    NoSuchColumn { path: PathBuf, column: String },
    #[error("{path} has no header row")]
    NoHeader { path: PathBuf },
}

/// Code of a missing value in [`ColumnValues::Strings`].
pub const MISSING_CODE: u32 = u32::MAX;

/// A column's values, typed the way pandas would type them.
#[derive(Debug, Clone)]
pub enum ColumnValues {
    /// Numbers. `NaN` marks a missing value; infinities are kept (the drift
    /// methods decide what to do with them). `integer` is true when every
    /// value was an integer and none was missing (pandas' `int64`).
    Numeric { values: Vec<f64>, integer: bool },
    /// Strings, dictionary-encoded: `codes[i]` indexes `dictionary`, or is
    /// [`MISSING_CODE`].
    Strings {
        codes: Vec<u32>,
        dictionary: Vec<String>,
    },
    /// Booleans without gaps (pandas' `bool`), as codes into `["False", "True"]`.
    Boolean { codes: Vec<u32> },
    /// A type drift does not compare (dates, timestamps, nested values).
    Unsupported {
        type_name: String,
        /// Whether each row has a value.
        present: Vec<bool>,
        /// A key per row equal for equal values (a hash of their bits), when
        /// the values are fixed-width (dates, times, durations); unused for
        /// rows without a value.
        keys: Option<Vec<u64>>,
        /// Dates, times, timestamps and durations as ordered integers.
        instants: Option<Instants>,
    },
}

impl ColumnValues {
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Numeric { values, .. } => values.len(),
            ColumnValues::Strings { codes, .. } | ColumnValues::Boolean { codes } => codes.len(),
            ColumnValues::Unsupported { present, .. } => present.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels of a dictionary-encoded column.
    pub fn dictionary(&self) -> &[String] {
        static BOOLEAN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        match self {
            ColumnValues::Strings { dictionary, .. } => dictionary,
            ColumnValues::Boolean { .. } => {
                BOOLEAN.get_or_init(|| vec!["False".to_string(), "True".to_string()])
            }
            _ => &[],
        }
    }
}

enum Storage {
    /// Parsed whole when opened.
    InMemory(Vec<Arc<ColumnValues>>),
    /// Decoded column by column from the file; the footer is parsed once,
    /// when the table is opened.
    Parquet(ArrowReaderMetadata),
}

/// A table on disk.
pub struct Table {
    path: PathBuf,
    names: Vec<String>,
    rows: usize,
    storage: Storage,
    /// Columns added after reading ([`Table::add_column`]), after the
    /// stored ones in `names`.
    added: Vec<Arc<ColumnValues>>,
}

impl Table {
    /// Opens a `.csv` or `.parquet` file (`.pq`, `.tsv` too), a CSV
    /// possibly compressed as pandas infers it from the name (`.gz`,
    /// `.bz2`, `.xz`, `.zst`, or a `.zip` or `.tar[.gz|.bz2|.xz]` holding
    /// one file). A Parquet file is recognised
    /// by its magic bytes whatever its name.
    pub fn open(path: &Path) -> Result<Table, DatasetError> {
        Table::open_bounded(path, u64::MAX)
    }

    /// [`Table::open`], refusing a compressed file that inflates to more
    /// than `max_inflated_bytes` (a server reading files it did not write).
    pub fn open_bounded(path: &Path, max_inflated_bytes: u64) -> Result<Table, DatasetError> {
        let io = |source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        };
        let format = NamedFormat::of_path(path);
        if has_parquet_magic(path).map_err(io)? || format.is_parquet() {
            // Parquet compresses a repeated value to nothing: its cells,
            // eight bytes each once decoded, are held to the same bound.
            let table = Table::open_parquet(path)?;
            let cells = (table.rows as u64).saturating_mul(table.names.len() as u64);
            if cells.saturating_mul(8) > max_inflated_bytes {
                return Err(DatasetError::TooLarge {
                    path: path.to_path_buf(),
                    limit: max_inflated_bytes,
                });
            }
            return Ok(table);
        }
        let Some(delimiter) = format.delimiter() else {
            return Err(DatasetError::UnknownFormat {
                path: path.to_path_buf(),
            });
        };
        match format.compression {
            None => Table::open_csv(path, delimiter),
            Some(compression) => {
                let bytes = inflate(path, compression, max_inflated_bytes)?;
                let read = crate::csv_reader::read(path, &bytes, delimiter)?;
                Ok(Table::in_memory(path, read))
            }
        }
    }

    /// A table of columns read whole (`names`, `rows`, `columns`).
    fn in_memory(
        path: &Path,
        (names, rows, columns): (Vec<String>, usize, Vec<Arc<ColumnValues>>),
    ) -> Table {
        Table {
            path: path.to_path_buf(),
            names,
            rows,
            storage: Storage::InMemory(columns),
            added: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn column_names(&self) -> &[String] {
        &self.names
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// One column's values. For Parquet this decodes the column from the file.
    pub fn column(&self, name: &str) -> Result<Arc<ColumnValues>, DatasetError> {
        let index = self.names.iter().position(|n| n == name).ok_or_else(|| {
            DatasetError::NoSuchColumn {
                path: self.path.clone(),
                column: name.to_string(),
            }
        })?;
        let stored = self.names.len() - self.added.len();
        if index >= stored {
            return Ok(self.added[index - stored].clone());
        }
        match &self.storage {
            Storage::InMemory(columns) => Ok(columns[index].clone()),
            Storage::Parquet(metadata) => self.read_parquet_column(metadata, index).map(Arc::new),
        }
    }

    /// Adds a computed column (a model's predictions on the rows, say).
    /// It must have one value per row and a name the table does not use.
    pub fn add_column(&mut self, name: &str, values: ColumnValues) -> Result<(), String> {
        if self.has_column(name) {
            return Err(format!(
                "{} already has a column '{name}'",
                self.path.display()
            ));
        }
        if values.len() != self.rows {
            return Err(format!(
                "a column of {} values for a table of {} rows",
                values.len(),
                self.rows
            ));
        }
        self.names.push(name.to_owned());
        self.added.push(Arc::new(values));
        Ok(())
    }

    /// A table made from Arrow record batches, such as the prediction log's
    /// segments: columns in the order first seen, a column absent from a
    /// batch missing in its rows. A column whose type differs between
    /// batches is read as numbers when every type is numeric, else as text.
    /// `label` names the table in errors.
    pub fn from_batches(label: &Path, batches: &[RecordBatch]) -> Table {
        let mut names: Vec<String> = Vec::new();
        let mut types: HashMap<String, DataType> = HashMap::new();
        for batch in batches {
            for field in batch.schema().fields() {
                let name = field.name();
                match types.get(name) {
                    None => {
                        names.push(name.clone());
                        types.insert(name.clone(), field.data_type().clone());
                    }
                    Some(seen) if seen == field.data_type() => {}
                    Some(seen) => {
                        let unified = if seen.is_numeric() && field.data_type().is_numeric() {
                            DataType::Float64
                        } else {
                            DataType::Utf8
                        };
                        types.insert(name.clone(), unified);
                    }
                }
            }
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let columns = names
            .iter()
            .map(|name| {
                let data_type = &types[name];
                let mut builder = ColumnBuilder::for_type(data_type, rows);
                for batch in batches {
                    let array = match batch.column_by_name(name) {
                        None => arrow_array::new_null_array(data_type, batch.num_rows()),
                        Some(array) if array.data_type() == data_type => array.clone(),
                        Some(array) if *data_type == DataType::Utf8 => {
                            let text: arrow_array::StringArray =
                                as_text(array).into_iter().collect();
                            Arc::new(text) as ArrayRef
                        }
                        Some(array) => array.clone(),
                    };
                    builder.append(&array);
                }
                Arc::new(builder.finish())
            })
            .collect();
        Table {
            path: label.to_path_buf(),
            names,
            rows,
            storage: Storage::InMemory(columns),
            added: Vec::new(),
        }
    }

    fn open_parquet(path: &Path) -> Result<Table, DatasetError> {
        let builder = parquet_builder(path)?;
        let metadata = ArrowReaderMetadata::try_new(builder.metadata().clone(), Default::default())
            .map_err(|e| DatasetError::Parquet {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let names = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        // The row groups' counts, which the reader decodes (the footer's
        // total is a separate field a forged file may understate).
        let rows = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|group| u64::try_from(group.num_rows()).unwrap_or(0))
            .fold(0u64, u64::saturating_add);
        let rows = usize::try_from(rows).unwrap_or(usize::MAX);
        Ok(Table {
            path: path.to_path_buf(),
            names,
            rows,
            storage: Storage::Parquet(metadata),
            added: Vec::new(),
        })
    }

    fn read_parquet_column(
        &self,
        metadata: &ArrowReaderMetadata,
        index: usize,
    ) -> Result<ColumnValues, DatasetError> {
        let parquet_error = |e: &dyn std::fmt::Display| DatasetError::Parquet {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let schema = metadata.schema();
        let field = schema.field(index).clone();
        let metadata = if matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
            // Strings are read as dictionaries: a category is interned once
            // per page dictionary instead of hashed once per row.
            let fields: Vec<arrow_schema::Field> = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let f = f.as_ref().clone();
                    if i == index {
                        let value = f.data_type().clone();
                        f.with_data_type(DataType::Dictionary(
                            Box::new(DataType::Int32),
                            Box::new(value),
                        ))
                    } else {
                        f
                    }
                })
                .collect();
            let hint = Arc::new(arrow_schema::Schema::new_with_metadata(
                fields,
                schema.metadata().clone(),
            ));
            let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new().with_schema(hint);
            ArrowReaderMetadata::try_new(metadata.metadata().clone(), options)
                .map_err(|e| parquet_error(&e))?
        } else {
            metadata.clone()
        };
        let file = File::open(&self.path).map_err(|source| DatasetError::Io {
            path: self.path.clone(),
            source,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata);
        // Nested columns have several leaves; projecting on the root keeps them together.
        let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|e| parquet_error(&e))?;
        let mut builder = ColumnBuilder::for_type(field.data_type(), self.rows);
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&e))?;
            builder.append(batch.column(0));
        }
        Ok(builder.finish())
    }

    fn open_csv(path: &Path, delimiter: u8) -> Result<Table, DatasetError> {
        #[cfg(unix)]
        let streamed = crate::csv_reader::read_streaming(path, delimiter)?;
        #[cfg(not(unix))]
        let streamed = None;
        let read = match streamed {
            Some(table) => table,
            None => {
                let bytes = read_whole(path).map_err(|source| DatasetError::Io {
                    path: path.into(),
                    source,
                })?;
                crate::csv_reader::read(path, &bytes, delimiter)?
            }
        };
        Ok(Table::in_memory(path, read))
    }

    /// The same table read one field at a time with `csv_column` (the
    /// reference the parallel reader is tested against).
    #[cfg(test)]
    pub(crate) fn open_csv_by_fields(path: &Path, delimiter: u8) -> Result<Table, DatasetError> {
        let file = File::open(path).map_err(|source| DatasetError::Io {
            path: path.into(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
        let csv_error = |e: csv::Error| DatasetError::Csv {
            path: path.to_path_buf(),
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        };
        let mut header = csv::StringRecord::new();
        // The first line that is not blank.
        let mut found = false;
        while reader.read_record(&mut header).map_err(csv_error)? {
            if !(header.len() == 1 && is_blank_line(&header[0], delimiter)) {
                found = true;
                break;
            }
        }
        let names = pandas_header(header.iter().map(str::to_string).collect());
        if !found || names.is_empty() {
            return Err(DatasetError::NoHeader {
                path: path.to_path_buf(),
            });
        }
        let mut fields: Vec<Vec<String>> = vec![Vec::new(); names.len()];
        let mut record = csv::StringRecord::new();
        // pandas' implicit index: the first record's fields beyond the
        // header's names lead every record and are not columns.
        let mut index_columns = None;
        while reader.read_record(&mut record).map_err(csv_error)? {
            if record.len() == 1 && is_blank_line(&record[0], delimiter) {
                continue;
            }
            let index_columns =
                *index_columns.get_or_insert(record.len().saturating_sub(names.len()));
            let line = record.position().map_or(0, |p| p.line());
            let record: csv::StringRecord = record.iter().skip(index_columns).collect();
            if record.len() > names.len() {
                return Err(DatasetError::Csv {
                    path: path.to_path_buf(),
                    line,
                    message: "too many fields".into(),
                });
            }
            for (i, column) in fields.iter_mut().enumerate() {
                column.push(record.get(i).unwrap_or_default().to_string());
            }
        }
        let rows = fields.first().map_or(0, Vec::len);
        let columns = fields
            .into_iter()
            .map(|f| Arc::new(csv_column(f)))
            .collect();
        Ok(Table {
            path: path.to_path_buf(),
            names,
            rows,
            storage: Storage::InMemory(columns),
            added: Vec::new(),
        })
    }
}

/// Below this many bytes a file is read by one thread.
const PARALLEL_READ_BYTES: u64 = 4 << 20;

/// The end of `name` that tells [`Table::open`] its format (`.csv`,
/// `.parquet`, `.csv.gz`…), for a copy staged under another name; `.csv`
/// when the name says nothing readable.
pub fn format_suffix(name: &str) -> String {
    let name = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let plain = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric());
    let parts: Vec<&str> = name.split('.').skip(1).collect();
    match parts[..] {
        [.., inner, tar, outer]
            if tar.eq_ignore_ascii_case("tar")
                && plain(inner)
                && matches!(
                    Compression::of_extension(&outer.to_ascii_lowercase()),
                    Some(Compression::Gzip | Compression::Bzip2 | Compression::Xz)
                ) =>
        {
            format!(".{inner}.tar.{outer}")
        }
        [.., inner, outer]
            if plain(inner)
                && plain(outer)
                && Compression::of_extension(&outer.to_ascii_lowercase()).is_some() =>
        {
            format!(".{inner}.{outer}")
        }
        [.., last] if plain(last) => format!(".{last}"),
        _ => ".csv".to_string(),
    }
}

/// Whether the file starts with Parquet's magic bytes (a Parquet file is
/// read as one whatever its name).
pub fn has_parquet_magic(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = File::open(path)?.read(&mut magic)?;
    Ok(read == 4 && &magic == b"PAR1")
}

/// What a file's name says about reading it as a table, as pandas infers
/// it: its extension (lower case) under a compression's, if any.
pub struct NamedFormat {
    /// `csv`, `tsv`, `txt`, `parquet`, `pq`, or whatever else the name has.
    pub extension: String,
    compression: Option<Compression>,
}

impl NamedFormat {
    pub fn of(name: &str) -> NamedFormat {
        let name = name.to_ascii_lowercase();
        let (inner, compression) = match name.rsplit_once('.') {
            Some((inner, outer)) => match Compression::of_extension(outer) {
                // `.tar.gz`, `.tar.bz2`, `.tar.xz`: an archive compressed
                // whole (pandas' `tar` compression).
                Some(stream @ (Compression::Gzip | Compression::Bzip2 | Compression::Xz))
                    if inner.ends_with(".tar") =>
                {
                    (
                        &inner[..inner.len() - ".tar".len()],
                        Some(Compression::Tar(Some(TarStream::of(stream)))),
                    )
                }
                Some(compression) => (inner, Some(compression)),
                None => (name.as_str(), None),
            },
            None => (name.as_str(), None),
        };
        NamedFormat {
            extension: inner
                .rsplit_once('.')
                .map_or(String::new(), |(_, e)| e.to_string()),
            compression,
        }
    }

    fn of_path(path: &Path) -> NamedFormat {
        NamedFormat::of(
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default(),
        )
    }

    /// A CSV or TSV file, compressed or not, as a directory's data files
    /// are picked (`.txt` is read as CSV only when named).
    pub fn is_delimited_table(&self) -> bool {
        matches!(self.extension.as_str(), "csv" | "tsv")
    }

    /// The field delimiter of a file named as CSV (`.csv`, `.txt`) or TSV.
    pub fn delimiter(&self) -> Option<u8> {
        match self.extension.as_str() {
            "csv" | "txt" => Some(b','),
            "tsv" => Some(b'\t'),
            _ => None,
        }
    }

    /// A Parquet file by its name (its content may say so too:
    /// [`has_parquet_magic`]).
    pub fn is_parquet(&self) -> bool {
        self.compression.is_none() && matches!(self.extension.as_str(), "parquet" | "pq")
    }
}

/// How a CSV file is compressed, as pandas infers it from the name.
#[derive(Clone, Copy)]
enum Compression {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    /// A zip archive holding exactly one file.
    Zip,
    /// A tar archive holding exactly one file, itself compressed whole
    /// (`.tar.gz`) or not (`.tar`).
    Tar(Option<TarStream>),
}

/// How a tar archive is compressed (pandas reads these three).
#[derive(Clone, Copy)]
enum TarStream {
    Gzip,
    Bzip2,
    Xz,
}

impl TarStream {
    fn of(stream: Compression) -> TarStream {
        match stream {
            Compression::Bzip2 => TarStream::Bzip2,
            Compression::Xz => TarStream::Xz,
            _ => TarStream::Gzip,
        }
    }
}

impl Compression {
    /// The compression a lower-case extension names.
    fn of_extension(extension: &str) -> Option<Compression> {
        match extension {
            "gz" | "gzip" => Some(Compression::Gzip),
            "bz2" => Some(Compression::Bzip2),
            "xz" => Some(Compression::Xz),
            "zst" | "zstd" => Some(Compression::Zstd),
            "zip" => Some(Compression::Zip),
            "tar" => Some(Compression::Tar(None)),
            _ => None,
        }
    }
}

/// Decoder memory an `.xz` file may ask for, in KiB.
const XZ_MEMORY_LIMIT_KIB: u32 = 256 * 1024;

/// A CSV file's bytes as [`Table::open`] reads them: decompressed when its
/// name says it is compressed (at most `limit` bytes then).
pub fn csv_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, DatasetError> {
    match NamedFormat::of_path(path).compression {
        Some(compression) => inflate(path, compression, limit),
        None => std::fs::read(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A compressed file's content, at most `limit` bytes of it.
fn inflate(path: &Path, compression: Compression, limit: u64) -> Result<Vec<u8>, DatasetError> {
    use std::io::Read;
    let io = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    let read = |reader: &mut dyn Read, bytes: &mut Vec<u8>| {
        reader.take(limit.saturating_add(1)).read_to_end(bytes)
    };
    // Concatenated streams too, as Python's `gzip`, `bz2` and `lzma` read
    // them. The xz memory limit refuses a header asking for a dictionary
    // beyond what `xz -9e` uses (64 MiB) many times over: the server reads
    // files it did not write.
    let gzip = |file| flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let bzip2 = |file| bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(file));
    let xz = |file| {
        lzma_rust2::XzReader::new_mem_limit(
            std::io::BufReader::new(file),
            true,
            XZ_MEMORY_LIMIT_KIB,
        )
    };
    match compression {
        Compression::Gzip => {
            read(&mut gzip(file), &mut bytes).map_err(io)?;
        }
        Compression::Bzip2 => {
            read(&mut bzip2(file), &mut bytes).map_err(io)?;
        }
        Compression::Xz => {
            read(&mut xz(file), &mut bytes).map_err(io)?;
        }
        Compression::Tar(stream) => {
            let stream: Box<dyn Read> = match stream {
                None => Box::new(std::io::BufReader::new(file)),
                Some(TarStream::Gzip) => Box::new(gzip(file)),
                Some(TarStream::Bzip2) => Box::new(bzip2(file)),
                Some(TarStream::Xz) => Box::new(xz(file)),
            };
            // Headers and padding add a few KiB to the file: reading stops
            // soon after the bound, whatever the archive claims.
            let mut archive = tar::Archive::new(stream.take(limit.saturating_add(1 << 20)));
            let mut files = 0;
            for entry in archive.entries().map_err(io)? {
                let mut entry = entry.map_err(io)?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                files += 1;
                if files > 1 || read(&mut entry, &mut bytes).map_err(io)? as u64 > limit {
                    break;
                }
            }
            if files != 1 {
                return Err(io(std::io::Error::other(
                    "a tar archive must hold exactly one file to be read as a table",
                )));
            }
        }
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(file).map_err(io)?;
            read(&mut decoder, &mut bytes).map_err(io)?;
        }
        Compression::Zip => {
            let zip_error = |e: zip::result::ZipError| io(std::io::Error::other(e.to_string()));
            let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
            let files: Vec<usize> = (0..archive.len())
                .filter(|&i| archive.by_index(i).is_ok_and(|f| f.is_file()))
                .collect();
            let [only] = files[..] else {
                return Err(io(std::io::Error::other(format!(
                    "a zip archive must hold exactly one file to be read as a table; this one holds {}",
                    files.len()
                ))));
            };
            let mut member = archive.by_index(only).map_err(zip_error)?;
            read(&mut member, &mut bytes).map_err(io)?;
        }
    }
    if bytes.len() as u64 > limit {
        return Err(DatasetError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// The file's bytes, its parts read on every core: copying from the page
/// cache into fresh memory (and the kernel zeroing that memory) otherwise
/// takes as long as one core's share of the parsing that follows.
#[cfg(unix)]
fn read_whole(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let threads = crate::csv_reader::reader_threads();
    let file = File::open(path)?;
    let length = file.metadata()?.len();
    if threads == 1 || length < PARALLEL_READ_BYTES {
        return std::fs::read(path);
    }
    let length = usize::try_from(length).map_err(std::io::Error::other)?;
    let mut bytes = vec![0u8; length];
    let part = length.div_ceil(threads);
    std::thread::scope(|scope| {
        let readers: Vec<_> = bytes
            .chunks_mut(part)
            .enumerate()
            .map(|(k, chunk)| {
                let file = &file;
                scope.spawn(move || file.read_exact_at(chunk, (k * part) as u64))
            })
            .collect();
        readers.into_iter().try_for_each(|reader| {
            reader
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a reader thread panicked")))
        })
    })?;
    Ok(bytes)
}

#[cfg(not(unix))]
fn read_whole(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

fn parquet_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, DatasetError> {
    let file = File::open(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| DatasetError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Accumulates Arrow batches of one column into [`ColumnValues`].
enum ColumnBuilder {
    Numeric {
        values: Vec<f64>,
        integer: bool,
    },
    Strings {
        codes: Vec<u32>,
        dictionary: Vec<String>,
        index: LabelIndex,
    },
    Boolean {
        codes: Vec<u32>,
        missing: bool,
    },
    Unsupported {
        type_name: String,
        present: Vec<bool>,
        keys: Option<Vec<u64>>,
        /// With the factor that brings stored integers to the scale.
        instants: Option<(Instants, i64)>,
    },
}

impl ColumnBuilder {
    fn for_type(data_type: &DataType, rows: usize) -> ColumnBuilder {
        use DataType::*;
        match data_type {
            Float16 | Float32 | Float64 | Decimal128(..) | Decimal256(..) => {
                ColumnBuilder::Numeric {
                    values: Vec::with_capacity(rows),
                    integer: false,
                }
            }
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => {
                ColumnBuilder::Numeric {
                    values: Vec::with_capacity(rows),
                    integer: true,
                }
            }
            Utf8 | LargeUtf8 | Utf8View => ColumnBuilder::strings(rows),
            Dictionary(_, value) if matches!(**value, Utf8 | LargeUtf8 | Utf8View) => {
                ColumnBuilder::strings(rows)
            }
            Boolean => ColumnBuilder::Boolean {
                codes: Vec::with_capacity(rows),
                missing: false,
            },
            other => ColumnBuilder::Unsupported {
                type_name: other.to_string(),
                present: Vec::with_capacity(rows),
                keys: other.primitive_width().map(|_| Vec::with_capacity(rows)),
                instants: TemporalScale::of(other).map(|(scale, factor)| {
                    let ticks = Vec::with_capacity(rows);
                    (Instants { scale, ticks }, factor)
                }),
            },
        }
    }

    fn strings(rows: usize) -> ColumnBuilder {
        ColumnBuilder::Strings {
            codes: Vec::with_capacity(rows),
            dictionary: Vec::new(),
            index: LabelIndex::default(),
        }
    }

    fn append(&mut self, array: &ArrayRef) {
        match self {
            ColumnBuilder::Numeric { values, integer } => {
                if array.null_count() > 0 {
                    // pandas reads a nullable integer column as float64.
                    *integer = false;
                }
                append_numbers(values, array);
            }
            ColumnBuilder::Strings {
                codes,
                dictionary,
                index,
            } => {
                if let DataType::Dictionary(..) = array.data_type() {
                    // Intern the batch's dictionary once, then map keys.
                    let batch_dictionary = array.as_any_dictionary();
                    let codes_of_values: Vec<u32> = arrow_strings(batch_dictionary.values())
                        .into_iter()
                        .map(|value| {
                            value.map_or(MISSING_CODE, |text| intern(text, dictionary, index))
                        })
                        .collect();
                    let keys = batch_dictionary.normalized_keys();
                    codes.extend((0..array.len()).map(|i| {
                        if array.is_null(i) {
                            MISSING_CODE
                        } else {
                            codes_of_values[keys[i]]
                        }
                    }));
                } else {
                    for value in arrow_strings(array) {
                        codes.push(match value {
                            None => MISSING_CODE,
                            Some(text) => intern(text, dictionary, index),
                        });
                    }
                }
            }
            ColumnBuilder::Boolean { codes, missing } => {
                let booleans = array.as_boolean();
                for i in 0..booleans.len() {
                    if booleans.is_null(i) {
                        *missing = true;
                        codes.push(MISSING_CODE);
                    } else {
                        codes.push(u32::from(booleans.value(i)));
                    }
                }
            }
            ColumnBuilder::Unsupported {
                present,
                keys,
                instants,
                ..
            } => {
                present.extend((0..array.len()).map(|i| !array.is_null(i)));
                if let Some((instants, factor)) = instants {
                    append_ticks(&mut instants.ticks, *factor, array);
                }
                if let Some(keys) = keys {
                    let width = array.data_type().primitive_width().unwrap_or(0);
                    let data = array.to_data();
                    let bytes = data.buffers().first().map_or(&[][..], |b| b.as_slice());
                    keys.extend((0..array.len()).map(|i| {
                        let at = (data.offset() + i) * width;
                        bytes
                            .get(at..at + width)
                            .map_or(0, sextant_stats::sketch::hash::hash_bytes)
                    }));
                }
            }
        }
    }

    fn finish(self) -> ColumnValues {
        match self {
            ColumnBuilder::Numeric { values, integer } => ColumnValues::Numeric { values, integer },
            ColumnBuilder::Strings {
                codes, dictionary, ..
            } => ColumnValues::Strings { codes, dictionary },
            // pandas keeps booleans with gaps as `object`: they are categories.
            ColumnBuilder::Boolean {
                codes,
                missing: true,
            } => ColumnValues::Strings {
                codes,
                dictionary: vec!["False".to_string(), "True".to_string()],
            },
            ColumnBuilder::Boolean {
                codes,
                missing: false,
            } => ColumnValues::Boolean { codes },
            ColumnBuilder::Unsupported {
                type_name,
                present,
                keys,
                instants,
            } => ColumnValues::Unsupported {
                type_name,
                present,
                keys,
                instants: instants.map(|(instants, _)| instants),
            },
        }
    }
}

/// A temporal array's stored integers (32 or 64 bits wide, by its type)
/// times `factor`; 0 where a row has no value.
fn append_ticks(ticks: &mut Vec<i64>, factor: i64, array: &ArrayRef) {
    let data = array.to_data();
    let bytes = data.buffers().first().map_or(&[][..], |b| b.as_slice());
    let width = array.data_type().primitive_width().unwrap_or(0);
    ticks.extend((0..array.len()).map(|i| {
        let at = (data.offset() + i) * width;
        let stored = match bytes.get(at..at + width) {
            _ if array.is_null(i) => 0,
            Some(&[a, b, c, d]) => i64::from(i32::from_le_bytes([a, b, c, d])),
            Some(eight) => eight.try_into().map_or(0, i64::from_le_bytes),
            None => 0,
        };
        stored.saturating_mul(factor)
    }));
}

/// Where each label of a dictionary is, by hash: codes into the dictionary
/// beside their label's hash, so a label is hashed once, stored once (in
/// the dictionary), and growing the table never hashes a label again.
/// Reading a column of near-unique strings is mostly this.
#[derive(Default)]
pub(crate) struct LabelIndex {
    table: hashbrown::HashTable<(u64, u32)>,
}

/// A label's hash for interning: the fast hash of the sketches (SipHash's
/// cost showed in profiles), seeded once per process at random. Labels come
/// from uploaded files: with a seed known in advance, whoever reads the
/// hash's source could search out labels that share their table slots,
/// and reading a column of them would take quadratic time.
fn label_hash(text: &str) -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64));
    sextant_stats::sketch::hash::hash_bytes_seeded(text.as_bytes(), seed)
}

pub(crate) fn intern(text: &str, dictionary: &mut Vec<String>, index: &mut LabelIndex) -> u32 {
    let hash = label_hash(text);
    let found = index.table.find(hash, |&(h, code)| {
        h == hash && dictionary[code as usize] == text
    });
    if let Some(&(_, code)) = found {
        return code;
    }
    let code = u32::try_from(dictionary.len()).expect("fewer than 4 billion categories");
    dictionary.push(text.to_string());
    index.table.insert_unique(hash, (hash, code), |&(h, _)| h);
    code
}

fn append_numbers(values: &mut Vec<f64>, array: &ArrayRef) {
    macro_rules! push_primitive {
        ($type:ty) => {{
            let array = array.as_primitive::<$type>();
            if array.null_count() == 0 {
                values.extend(array.values().iter().map(|&v| v as f64));
            } else {
                values.extend(array.iter().map(|v| v.map_or(f64::NAN, |v| v as f64)));
            }
        }};
    }
    match array.data_type() {
        DataType::Float64 => push_primitive!(Float64Type),
        DataType::Float32 => push_primitive!(Float32Type),
        DataType::Int64 => push_primitive!(Int64Type),
        DataType::Int32 => push_primitive!(Int32Type),
        DataType::Int16 => push_primitive!(Int16Type),
        DataType::Int8 => push_primitive!(Int8Type),
        DataType::UInt64 => push_primitive!(UInt64Type),
        DataType::UInt32 => push_primitive!(UInt32Type),
        DataType::UInt16 => push_primitive!(UInt16Type),
        DataType::UInt8 => push_primitive!(UInt8Type),
        // Half floats and decimals: through their string form, exact enough
        // for drift and rare in tabular training data.
        _ => values.extend(arrow_display(array).into_iter().map(|v| {
            v.and_then(|text| text.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        })),
    }
}

/// Any array's values as text (`True`/`False` for booleans, as pandas
/// prints them), `None` for nulls.
fn as_text(array: &ArrayRef) -> Vec<Option<String>> {
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            arrow_strings(array)
                .into_iter()
                .map(|v| v.map(str::to_string))
                .collect()
        }
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map(|b| if b { "True" } else { "False" }.to_string()))
            .collect(),
        data_type if data_type.is_numeric() => {
            let mut values = Vec::with_capacity(array.len());
            append_numbers(&mut values, array);
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (!array.is_null(i)).then(|| v.to_string()))
                .collect()
        }
        _ => arrow_display(array),
    }
}

/// Strings of a string or dictionary-of-strings array, `None` for nulls.
fn arrow_strings(array: &ArrayRef) -> Vec<Option<&str>> {
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        DataType::Utf8View => array.as_string_view().iter().collect(),
        DataType::Dictionary(..) => {
            let dictionary = array.as_any_dictionary();
            let values = arrow_strings(dictionary.values());
            let keys = dictionary.normalized_keys();
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        None
                    } else {
                        values[keys[i]]
                    }
                })
                .collect()
        }
        _ => vec![None; array.len()],
    }
}

fn arrow_display(array: &ArrayRef) -> Vec<Option<String>> {
    use arrow_array::types::{Decimal128Type, Decimal256Type, Float16Type};
    match array.data_type() {
        DataType::Float16 => array
            .as_primitive::<Float16Type>()
            .iter()
            .map(|v| v.map(|v| f64::from(v).to_string()))
            .collect(),
        DataType::Decimal128(_, _) => {
            let decimals = array.as_primitive::<Decimal128Type>();
            (0..decimals.len())
                .map(|i| (!decimals.is_null(i)).then(|| decimals.value_as_string(i)))
                .collect()
        }
        DataType::Decimal256(_, _) => {
            let decimals = array.as_primitive::<Decimal256Type>();
            (0..decimals.len())
                .map(|i| (!decimals.is_null(i)).then(|| decimals.value_as_string(i)))
                .collect()
        }
        _ => vec![None; array.len()],
    }
}

/// Types a CSV column as pandas' `read_csv` would: integers when every field
/// is an integer, floats when every field is a number or empty (or one of
/// pandas' NaN spellings), booleans for `True`/`False` without gaps, and
/// strings otherwise (empty fields missing).
pub(crate) fn csv_column(fields: Vec<String>) -> ColumnValues {
    if fields.is_empty() {
        // A header without rows: pandas' `object`, text.
        return ColumnValues::Strings {
            codes: Vec::new(),
            dictionary: Vec::new(),
        };
    }
    if let Some(values) = csv_integers(&fields) {
        return ColumnValues::Numeric {
            values,
            integer: true,
        };
    }
    if let Some(values) = csv_floats(&fields) {
        return ColumnValues::Numeric {
            values,
            integer: false,
        };
    }
    if let Some(codes) = csv_booleans(&fields) {
        return ColumnValues::Boolean { codes };
    }
    let mut dictionary = Vec::new();
    let mut index = LabelIndex::default();
    let codes = fields
        .iter()
        .map(|field| {
            if is_na_spelling(field) {
                MISSING_CODE
            } else {
                intern(field, &mut dictionary, &mut index)
            }
        })
        .collect();
    ColumnValues::Strings { codes, dictionary }
}

/// pandas' default `na_values` that can appear in a numeric column.
pub fn is_na_spelling(field: &str) -> bool {
    matches!(
        field,
        "" | "NaN"
            | "nan"
            | "NA"
            | "N/A"
            | "n/a"
            | "NULL"
            | "null"
            | "None"
            | "<NA>"
            | "-NaN"
            | "-nan"
            | "#N/A"
            | "#NA"
            | "1.#IND"
            | "-1.#IND"
            | "1.#QNAN"
            | "-1.#QNAN"
            | "#N/A N/A"
    )
}

fn csv_integers(fields: &[String]) -> Option<Vec<f64>> {
    if fields.is_empty() {
        return None;
    }
    fields
        .iter()
        .map(|f| f.trim().parse::<i64>().ok().map(|v| v as f64))
        .collect()
}

fn csv_floats(fields: &[String]) -> Option<Vec<f64>> {
    fields
        .iter()
        .map(|field| {
            let field = field.trim();
            if is_na_spelling(field) {
                return Some(f64::NAN);
            }
            parse_float_field(field)
        })
        .collect()
}

/// A line `pandas.read_csv` skips as blank: nothing but spaces and tabs
/// (that are not the delimiter), as its tokenizer's `skip_blank_lines`.
pub fn is_blank_line(line: &str, delimiter: u8) -> bool {
    line.bytes()
        .all(|b| (b == b' ' || b == b'\t' || b == b'\r') && b != delimiter)
}

/// A CSV header's names as `pandas.read_csv` gives them, so specs and
/// reports name columns as a pandas user sees them: an empty name is
/// `Unnamed: I` (I its position; what `to_csv` writes for an index without
/// a name), and a repeated name gets `.1`, `.2`… skipping suffixed names
/// the header already has (pandas' `TextReader._get_header`, the C
/// parser's de-duplication).
pub fn pandas_header(mut names: Vec<String>) -> Vec<String> {
    for (i, name) in names.iter_mut().enumerate() {
        if name.is_empty() {
            *name = format!("Unnamed: {i}");
        }
    }
    // How many times each name is in the header as renamed so far (pandas
    // asks `name in header` of the header it is renaming), so a wide header
    // is not scanned once per repeated name.
    let mut in_header: HashMap<String, usize> = HashMap::new();
    for name in &names {
        *in_header.entry(name.clone()).or_default() += 1;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..names.len() {
        let original = names[i].clone();
        let mut name = original.clone();
        let mut count = counts.get(&name).copied().unwrap_or(0);
        if count > 0 {
            while count > 0 {
                counts.insert(original.clone(), count + 1);
                name = format!("{original}.{count}");
                if in_header.get(&name).is_some_and(|&n| n > 0) {
                    count += 1;
                } else {
                    count = counts.get(&name).copied().unwrap_or(0);
                }
            }
            if let Some(n) = in_header.get_mut(&original) {
                *n -= 1;
            }
            *in_header.entry(name.clone()).or_default() += 1;
            names[i] = name.clone();
        }
        counts.insert(name, count + 1);
    }
    names
}

/// A trimmed, non-missing field as pandas reads a float: infinities by
/// their spellings, other non-finite text refused.
///
/// `fast_float2` (Eisel-Lemire, correctly rounded) reads the number: it
/// accepts the grammar `str::parse` does and gives the same bits (a test
/// compares the two on random spellings) in about three quarters of the
/// time, and float parsing is most of reading a numeric CSV.
pub(crate) fn parse_float_field(field: &str) -> Option<f64> {
    match field {
        "inf" | "Inf" | "+inf" | "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-inf" | "-Inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => fast_float2::parse::<f64, _>(field)
            .ok()
            .filter(|v| v.is_finite()),
    }
}

fn csv_booleans(fields: &[String]) -> Option<Vec<u32>> {
    fields
        .iter()
        .map(|field| match field.as_str() {
            "True" | "true" | "TRUE" => Some(1),
            "False" | "false" | "FALSE" => Some(0),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// A CSV compressed with gzip, bzip2, xz, zstd or zip reads as the
    /// plain file does; an archive of two files, a corrupt file and a file inflating
    /// past the bound are refused, each naming the file.
    #[test]
    fn compressed_csv_reads_as_the_plain_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from(",id,city,score\n");
        for i in 0..5000 {
            text.push_str(&format!("{i},{i},c{},{}\n", i % 7, i as f64 / 8.0));
        }
        let plain = dir.path().join("t.csv");
        std::fs::write(&plain, &text).unwrap();
        let gz = dir.path().join("t.csv.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        let zst = dir.path().join("T.CSV.ZST");
        std::fs::write(&zst, zstd::stream::encode_all(text.as_bytes(), 1).unwrap()).unwrap();
        let bz2 = dir.path().join("t.csv.bz2");
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        std::fs::write(&bz2, encoder.finish().unwrap()).unwrap();
        let xz = dir.path().join("t.tsv.xz");
        let tabbed = text.replace(',', "\t");
        let mut encoder =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
        encoder.write_all(tabbed.as_bytes()).unwrap();
        std::fs::write(&xz, encoder.finish().unwrap()).unwrap();
        let zip_file = |name: &str, members: &[&str]| {
            let path = dir.path().join(name);
            let mut writer = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
            for member in members {
                writer
                    .start_file(*member, zip::write::SimpleFileOptions::default())
                    .unwrap();
                writer.write_all(text.as_bytes()).unwrap();
            }
            writer.finish().unwrap();
            path
        };
        let zipped = zip_file("t.csv.zip", &["t.csv"]);
        let tar_file = |name: &str, members: &[&str]| {
            let mut builder = tar::Builder::new(Vec::new());
            for member in members {
                let mut header = tar::Header::new_gnu();
                header.set_size(text.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder
                    .append_data(&mut header, member, text.as_bytes())
                    .unwrap();
            }
            let archive = builder.into_inner().unwrap();
            let path = dir.path().join(name);
            if name.ends_with(".gz") {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&archive).unwrap();
                std::fs::write(&path, encoder.finish().unwrap()).unwrap();
            } else {
                std::fs::write(&path, archive).unwrap();
            }
            path
        };
        let tarred = tar_file("t.csv.tar", &["t.csv"]);
        let tarred_gz = tar_file("t.csv.tar.gz", &["inside/t.csv"]);
        let expected = super::Table::open(&plain).unwrap();
        assert_eq!(
            expected.column_names(),
            ["Unnamed: 0", "id", "city", "score"]
        );
        for path in [&gz, &zst, &zipped, &bz2, &xz, &tarred, &tarred_gz] {
            let table = super::Table::open(path).unwrap();
            assert_eq!(table.rows(), 5000, "{path:?}");
            assert_eq!(table.column_names(), expected.column_names());
            for name in expected.column_names() {
                let (a, b) = (table.column(name).unwrap(), expected.column(name).unwrap());
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{path:?} {name}");
            }
        }
        let two = zip_file("two.csv.zip", &["a.csv", "b.csv"]);
        let corrupt = dir.path().join("bad.csv.gz");
        std::fs::write(&corrupt, b"not gzip at all").unwrap();
        let corrupt_xz = dir.path().join("bad.csv.xz");
        std::fs::write(&corrupt_xz, b"\xFD7zXZ\x00 and then nothing").unwrap();
        let two_tarred = tar_file("two.csv.tar.gz", &["a.csv", "b.csv"]);
        for path in [&two, &corrupt, &corrupt_xz, &two_tarred] {
            let error = super::Table::open(path).err().unwrap().to_string();
            assert!(error.contains(&path.display().to_string()), "{error}");
        }
        for (name, suffix) in [
            ("runs/1/data.CSV.gz", ".CSV.gz"),
            ("data.parquet", ".parquet"),
            ("archive.tar.gz", ".tar.gz"),
            ("runs/1/data.csv.tar.gz", ".csv.tar.gz"),
            ("data.csv.TAR.gz", ".csv.tar.gz"),
            ("data.tsv.tar", ".tsv.tar"),
            ("noext", ".csv"),
            ("we.ird/na me.c$v", ".csv"),
            ("a.csv.", ".csv"),
        ] {
            assert_eq!(super::format_suffix(name), suffix, "{name}");
        }
        for bomb in [&gz, &tarred_gz] {
            let error = super::Table::open_bounded(bomb, 1000).err().unwrap();
            assert!(
                matches!(error, super::DatasetError::TooLarge { limit: 1000, .. }),
                "{error}"
            );
        }
        assert!(super::Table::open(&dir.path().join("t.parquet.gz")).is_err());
    }

    /// Headers with empty and repeated names, named as pandas 3.1's
    /// `read_csv` names them (its output, recorded).
    #[test]
    fn header_names_are_pandas_names() {
        let cases: [(&str, &[&str]); 6] = [
            ("a,b,a,", &["a", "b", "a.1", "Unnamed: 3"]),
            (",a,a,a.1,a", &["Unnamed: 0", "a", "a.2", "a.1", "a.3"]),
            ("x,x.1,x,x", &["x", "x.1", "x.2", "x.3"]),
            (",,", &["Unnamed: 0", "Unnamed: 1", "Unnamed: 2"]),
            ("a,Unnamed: 1,", &["a", "Unnamed: 1", "Unnamed: 2"]),
            ("a, a,a ", &["a", " a", "a "]),
        ];
        for (header, expected) in cases {
            let names = super::pandas_header(header.split(',').map(str::to_string).collect());
            assert_eq!(names, expected, "{header}");
        }
    }

    /// `parse_float_field` accepts and reads what `str::parse` does (its
    /// own infinity spellings aside): random spellings over digits, signs,
    /// points, exponents and the letters of `inf` and `nan`, and random
    /// full-precision decimals.
    #[test]
    fn floats_read_as_str_parse_reads_them() {
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let alphabet = b"0123456789.+-eEinfatyINFATY_ ";
        let mut fields = Vec::new();
        for _ in 0..300_000 {
            let length = 1 + next() as usize % 8;
            fields.push(
                (0..length)
                    .map(|_| {
                        let r = next() as usize;
                        // Digits a third of the time, so numbers are common.
                        if r % 3 == 0 {
                            alphabet[r / 3 % 10] as char
                        } else {
                            alphabet[r % alphabet.len()] as char
                        }
                    })
                    .collect::<String>(),
            );
            let value = f64::from_bits((next() << 31 | next()) << 2);
            if value.is_finite() {
                fields.push(format!("{value}"));
                fields.push(format!("{value:e}"));
                fields.push(format!("{:.17}", value % 1e3));
            }
        }
        let mut numbers = 0;
        for field in &fields {
            if matches!(
                field.trim_start_matches(['+', '-']),
                "inf" | "Inf" | "Infinity"
            ) {
                continue;
            }
            let expected = field.parse::<f64>().ok().filter(|v| v.is_finite());
            let read = super::parse_float_field(field);
            assert_eq!(
                read.map(f64::to_bits),
                expected.map(f64::to_bits),
                "{field:?}"
            );
            numbers += usize::from(read.is_some());
        }
        assert!(numbers > fields.len() / 2, "{numbers} of {}", fields.len());
    }

    /// A file large enough to be read in parts comes back byte for byte,
    /// whatever its length's remainder over the parts.
    #[test]
    fn a_file_read_in_parts_is_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for length in [0, 1000, (super::PARALLEL_READ_BYTES as usize) * 2 + 7] {
            let bytes: Vec<u8> = (0..length).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{length}"));
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(super::read_whole(&path).unwrap(), bytes, "{length} bytes");
        }
    }
}
