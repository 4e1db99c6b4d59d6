//! CSV into typed columns on every core.
//!
//! A large file without quotes is streamed (`read_streaming`): each core
//! reads its share of the file (the lines that start in its byte range) a
//! chunk at a time into a buffer of its own, so the file is never held
//! whole. Any other file is read whole and its body cut into one share per
//! core at record boundaries outside quoted fields (`read`). A share
//! without quotes is split by one vector scan for the delimiter and the
//! newline, a float column's fields parsed where they start; a quoted one
//! is tokenised by the `csv` crate. Fields are typed as they come: a column
//! stays numbers while its fields parse as numbers, and becomes categories
//! (interned, no string per field) when they do not. The shares' columns
//! are then joined in order. The typing is exactly `csv_column`'s (pandas'
//! `read_csv` rules); a column whose fields change kind in a way that
//! loses their spelling (numbers, then text) is read again as text, the
//! slow and exact way (for a streamed file, by reading it whole).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use super::dataset::{
    csv_column, intern, is_blank_line, is_na_spelling, pandas_header, parse_float_field,
    ColumnValues, DatasetError, LabelIndex, MISSING_CODE,
};

/// Below this many body bytes one thread reads the file.
const PARALLEL_BYTES: usize = 1 << 20;

/// Threads reading one file: one per core, at most 8 (each holds its own
/// share's columns until they are joined).
pub(crate) fn reader_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// One column of one share, typed so far.
enum Partial {
    /// Only missing values so far: `missing` of them; `exact` while each
    /// was missing in text too (`""` or a NaN spelling, not `" "`).
    Unknown {
        missing: usize,
        exact: bool,
    },
    Int(Vec<f64>),
    Float(Vec<f64>),
    Bool(Vec<u32>),
    Text {
        codes: Vec<u32>,
        dictionary: Vec<String>,
        index: LabelIndex,
    },
    /// Mixed kinds: read again as text.
    Fallback,
}

/// `str::trim`, answered without decoding characters when the field
/// neither starts nor ends with whitespace or a non-ASCII byte (almost
/// every number in a file).
fn trimmed(field: &str) -> &str {
    let plain_end = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii() && !b.is_ascii_whitespace());
    let bytes = field.as_bytes();
    if plain_end(bytes.first()) && plain_end(bytes.last()) {
        field
    } else {
        field.trim()
    }
}

fn boolean(field: &str) -> Option<u32> {
    match field {
        "True" | "true" | "TRUE" => Some(1),
        "False" | "false" | "FALSE" => Some(0),
        _ => None,
    }
}

impl Partial {
    /// Adds one field. The common case, a field of the column's kind so
    /// far, is answered in place; only a change of kind moves the column.
    fn push(&mut self, field: &str, expected_rows: usize) {
        match self {
            Partial::Float(values) => {
                // Same verdicts as `change_kind`'s order (missing first): no
                // missing spelling parses as a finite number.
                let field = trimmed(field);
                if let Some(v) = parse_float_field(field) {
                    values.push(v);
                    return;
                }
                if is_na_spelling(field) {
                    values.push(f64::NAN);
                    return;
                }
            }
            Partial::Int(values) => {
                if let Ok(v) = trimmed(field).parse::<i64>() {
                    values.push(v as f64);
                    return;
                }
            }
            Partial::Text {
                codes,
                dictionary,
                index,
            } => {
                codes.push(if is_na_spelling(field) {
                    MISSING_CODE
                } else {
                    intern(field, dictionary, index)
                });
                return;
            }
            Partial::Bool(codes) => {
                if let Some(code) = boolean(field) {
                    codes.push(code);
                    return;
                }
            }
            Partial::Fallback => return,
            Partial::Unknown { .. } => {}
        }
        self.change_kind(field, expected_rows);
    }

    /// `push` for a field that may change the column's kind. A column's
    /// first values get room for `expected_rows`: growing by doubling
    /// would touch (and have the kernel zero) about twice the memory.
    fn change_kind(&mut self, field: &str, expected_rows: usize) {
        let room = |missing: usize| expected_rows.max(missing + 1);
        let trimmed = field.trim();
        *self = match std::mem::replace(self, Partial::Fallback) {
            Partial::Unknown { missing, exact } => {
                if is_na_spelling(trimmed) {
                    Partial::Unknown {
                        missing: missing + 1,
                        exact: exact && is_na_spelling(field),
                    }
                } else if let (Ok(v), 0) = (trimmed.parse::<i64>(), missing) {
                    let mut values = Vec::with_capacity(room(0));
                    values.push(v as f64);
                    Partial::Int(values)
                } else if let Some(v) = parse_float_field(trimmed) {
                    let mut values = Vec::with_capacity(room(missing));
                    values.resize(missing, f64::NAN);
                    values.push(v);
                    Partial::Float(values)
                } else if let (Some(code), 0) = (boolean(field), missing) {
                    let mut codes = Vec::with_capacity(room(0));
                    codes.push(code);
                    Partial::Bool(codes)
                } else if exact {
                    let mut dictionary = Vec::new();
                    let mut index = LabelIndex::default();
                    let mut codes = Vec::with_capacity(room(missing));
                    codes.resize(missing, MISSING_CODE);
                    codes.push(intern(field, &mut dictionary, &mut index));
                    Partial::Text {
                        codes,
                        dictionary,
                        index,
                    }
                } else {
                    Partial::Fallback
                }
            }
            Partial::Int(mut values) => {
                if let Ok(v) = trimmed.parse::<i64>() {
                    values.push(v as f64);
                    Partial::Int(values)
                } else if let Some(v) = parse_float_field(trimmed) {
                    values.push(v);
                    Partial::Float(values)
                } else if is_na_spelling(trimmed) {
                    values.push(f64::NAN);
                    Partial::Float(values)
                } else {
                    Partial::Fallback
                }
            }
            Partial::Float(mut values) => {
                if is_na_spelling(trimmed) {
                    values.push(f64::NAN);
                    Partial::Float(values)
                } else if let Some(v) = parse_float_field(trimmed) {
                    values.push(v);
                    Partial::Float(values)
                } else {
                    Partial::Fallback
                }
            }
            Partial::Bool(mut codes) => match boolean(field) {
                Some(code) => {
                    codes.push(code);
                    Partial::Bool(codes)
                }
                None => Partial::Fallback,
            },
            Partial::Text {
                mut codes,
                mut dictionary,
                mut index,
            } => {
                codes.push(if is_na_spelling(field) {
                    MISSING_CODE
                } else {
                    intern(field, &mut dictionary, &mut index)
                });
                Partial::Text {
                    codes,
                    dictionary,
                    index,
                }
            }
            Partial::Fallback => Partial::Fallback,
        };
    }
}

/// Files from this size are streamed by `read_streaming`.
pub(crate) const STREAM_BYTES: u64 = 4 << 20;

/// What each streaming thread reads at a time (it grows for a longer line).
#[cfg(unix)]
const CHUNK_BYTES: usize = 1 << 20;

/// Why a share could not be streamed.
#[cfg(unix)]
enum StreamStop {
    /// The file needs the whole-file reader: a quote, a lone carriage
    /// return, invalid UTF-8, a record of the wrong width, or a column
    /// whose kinds mix. That reader handles each exactly, with its line.
    Irregular,
    Io(std::io::Error),
}

type ReadTable = (Vec<String>, usize, Vec<Arc<ColumnValues>>);

/// Reads a large, plain CSV file on every core without holding it whole:
/// each thread reads its share of the file a chunk at a time into one
/// buffer of its own and types the complete lines in it. Holding the file
/// whole meant fresh memory the size of the file, which the kernel zeroes
/// before the copy from the page cache, and that was a fifth of the time.
///
/// Ok(None) when the file should be read whole instead (small, one core,
/// a header that is not plain, or anything `StreamStop::Irregular` names);
/// the whole-file reader then gives the same columns, or the error with
/// its line.
#[cfg(unix)]
pub(crate) fn read_streaming(
    path: &Path,
    delimiter: u8,
) -> Result<Option<ReadTable>, DatasetError> {
    use std::os::unix::fs::FileExt;
    let io_error = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let threads = reader_threads();
    if threads == 1 || !delimiter.is_ascii() || matches!(delimiter, b'"' | b'\r' | b'\n') {
        return Ok(None);
    }
    let file = std::fs::File::open(path).map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    if length < STREAM_BYTES {
        return Ok(None);
    }
    let length = usize::try_from(length).map_err(|e| io_error(std::io::Error::other(e)))?;
    // The header: a plain first line within the first chunk.
    let mut head = vec![0u8; CHUNK_BYTES.min(length)];
    file.read_exact_at(&mut head, 0).map_err(io_error)?;
    let Some(header_end) = memchr::memchr(b'\n', &head) else {
        return Ok(None);
    };
    let header = &head[..header_end];
    let header = header.strip_suffix(b"\r").unwrap_or(header);
    let plain_header = !header.iter().all(|&b| b == b' ' || b == b'\t')
        && !header.starts_with(b"\xEF\xBB\xBF")
        && memchr::memchr2(b'"', b'\r', header).is_none();
    let Some(header) = std::str::from_utf8(header).ok().filter(|_| plain_header) else {
        return Ok(None);
    };
    let names = pandas_header(
        header
            .split(delimiter as char)
            .map(str::to_string)
            .collect(),
    );
    let body_start = header_end + 1;
    let body_length = length - body_start;
    let cuts: Vec<usize> = (0..=threads)
        .map(|k| body_start + body_length * k / threads)
        .collect();
    let irregular = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Result<Vec<Partial>, StreamStop>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .windows(2)
            .map(|cut| {
                let (file, irregular, width) = (&file, &irregular, names.len());
                let (start, end) = (cut[0], cut[1]);
                // The first share sizes its columns for the whole body, so
                // the others append to them without a reallocation.
                let sized_for = if start == body_start {
                    body_length
                } else {
                    end - start
                };
                scope.spawn(move || {
                    let share = ShareReader {
                        file,
                        start,
                        end,
                        length,
                        first: start == body_start,
                        sized_for,
                        delimiter,
                        irregular,
                    };
                    let result = share.read(width);
                    if matches!(result, Err(StreamStop::Irregular)) {
                        irregular.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(StreamStop::Irregular)))
            .collect()
    });
    let mut partials = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(columns) => partials.push(columns),
            Err(StreamStop::Io(source)) => return Err(io_error(source)),
            Err(StreamStop::Irregular) => return Ok(None),
        }
    }
    let (columns, fallback) = assemble(partials, names.len());
    if !fallback.is_empty() {
        return Ok(None);
    }
    Ok(Some(finish(names, columns)))
}

/// One thread's share of a streamed file: the lines that start in
/// `start..end` (byte offsets; the line running over `end` is finished).
#[cfg(unix)]
struct ShareReader<'a> {
    file: &'a std::fs::File,
    start: usize,
    end: usize,
    length: usize,
    first: bool,
    /// Body bytes the columns are sized for.
    sized_for: usize,
    delimiter: u8,
    irregular: &'a std::sync::atomic::AtomicBool,
}

#[cfg(unix)]
impl ShareReader<'_> {
    fn read(&self, width: usize) -> Result<Vec<Partial>, StreamStop> {
        use std::os::unix::fs::FileExt;
        let mut columns: Vec<Partial> = (0..width)
            .map(|_| Partial::Unknown {
                missing: 0,
                exact: true,
            })
            .collect();
        let mut buffer = vec![0u8; CHUNK_BYTES];
        // A share after the first starts one byte early: when that byte is
        // a newline, the line at `start` is this share's.
        let mut position = if self.first {
            self.start
        } else {
            self.start - 1
        };
        let mut looking_for_first_line = !self.first;
        let mut filled = 0;
        let mut expected_rows = None;
        loop {
            if self.irregular.load(Ordering::Relaxed) {
                return Err(StreamStop::Irregular);
            }
            if filled == buffer.len() {
                buffer.resize(buffer.len() * 2, 0);
            }
            let wanted = (buffer.len() - filled).min(self.length - position);
            self.file
                .read_exact_at(&mut buffer[filled..filled + wanted], position as u64)
                .map_err(StreamStop::Io)?;
            position += wanted;
            filled += wanted;
            let at_end_of_file = position == self.length;
            let base = position - filled;
            let mut from = 0;
            if looking_for_first_line {
                match memchr::memchr(b'\n', &buffer[..filled]) {
                    Some(newline) => {
                        from = newline + 1;
                        looking_for_first_line = false;
                    }
                    None if at_end_of_file => return Ok(columns),
                    None => {
                        filled = 0;
                        continue;
                    }
                }
            }
            if base + from >= self.end {
                return Ok(columns);
            }
            // This share's last line ends at the first newline at or after
            // `end - 1`.
            let last_from = (self.end - 1 - base).max(from);
            let last_newline = buffer
                .get(last_from..filled)
                .and_then(|tail| memchr::memchr(b'\n', tail));
            let (upto, done) = match last_newline {
                Some(newline) => (last_from + newline + 1, true),
                None if at_end_of_file => (filled, true),
                None => match memchr::memrchr(b'\n', &buffer[from..filled]) {
                    Some(newline) => (from + newline + 1, false),
                    None => (from, false),
                },
            };
            let lines = &buffer[from..upto];
            if !lines.is_empty() {
                if memchr::memchr(b'"', lines).is_some() {
                    return Err(StreamStop::Irregular);
                }
                let text = plain_text(lines, self.delimiter, false).ok_or(StreamStop::Irregular)?;
                let expected = *expected_rows.get_or_insert_with(|| {
                    // Sized from the first lines' mean length, with room to spare.
                    let newlines = memchr::memchr_iter(b'\n', lines).count().max(1);
                    let mean = (lines.len() / newlines).max(2);
                    self.sized_for / mean + self.sized_for / mean / 16 + 64
                });
                read_plain(text, self.delimiter, &mut columns, expected)
                    .map_err(|_| StreamStop::Irregular)?;
            }
            if done {
                return Ok(columns);
            }
            buffer.copy_within(upto..filled, 0);
            filled -= upto;
        }
    }
}

/// Reads `bytes` (a whole CSV file with a header) into named columns.
pub(crate) fn read(path: &Path, bytes: &[u8], delimiter: u8) -> Result<ReadTable, DatasetError> {
    let csv_error = |line: u64, message: String| DatasetError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut header = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::StringRecord::new();
    // Blank lines before the header are skipped, as pandas skips them.
    let has_header = loop {
        let read = header
            .read_record(&mut record)
            .map_err(|e| csv_error(e.position().map_or(1, |p| p.line()), e.to_string()))?;
        if !(read && record.len() == 1 && is_blank_line(&record[0], delimiter)) {
            break read;
        }
    };
    let names = pandas_header(record.iter().map(str::to_string).collect());
    if !has_header || names.is_empty() {
        return Err(DatasetError::NoHeader {
            path: path.to_path_buf(),
        });
    }
    let body_start = header.position().byte() as usize;
    let header_lines = header.position().line() - 1;
    // pandas' implicit index: when the first record has more fields than
    // the header names (R's `write.table` leaves the row names' column
    // unnamed), the extra leading fields of every record are the index,
    // not columns. They are read as columns of their own and dropped.
    let first_record_width = loop {
        match header.read_record(&mut record) {
            Ok(true) if record.len() == 1 && is_blank_line(&record[0], delimiter) => continue,
            Ok(true) => break record.len(),
            _ => break 0,
        }
    };
    let index_columns = first_record_width.saturating_sub(names.len());
    let names: Vec<String> = (0..index_columns)
        .map(|k| format!("index {k}"))
        .chain(names)
        .collect();
    let body = &bytes[body_start.min(bytes.len())..];
    // One scan: where the shares may be cut, and whether they can be split
    // without the `csv` crate's state machine.
    let quoted = memchr::memchr(b'"', body).is_some();
    let threads = reader_threads();
    let shares = if body.len() < PARALLEL_BYTES || threads == 1 {
        vec![(0, body.len())]
    } else {
        split(body, threads, quoted)
    };
    // Each share counts its lines, then the first share sizes its columns
    // for the whole file: the others are appended to them without a
    // reallocation (growing a column copied it into fresh memory, which
    // the kernel zeroed first: a quarter of the reading time).
    let line_counts: Vec<AtomicUsize> = shares.iter().map(|_| AtomicUsize::new(0)).collect();
    let counted = Barrier::new(shares.len());
    let parsed: Vec<Result<Vec<Partial>, (usize, u64, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(k, &(start, end))| {
                let share = &body[start..end];
                let width = names.len();
                let (line_counts, counted) = (&line_counts, &counted);
                scope.spawn(move || {
                    let lines = memchr::memchr_iter(b'\n', share).count() + 1;
                    line_counts[k].store(lines, Ordering::Relaxed);
                    counted.wait();
                    let expected_rows = if k == 0 {
                        line_counts.iter().map(|n| n.load(Ordering::Relaxed)).sum()
                    } else {
                        lines
                    };
                    parse_share(share, delimiter, width, quoted, expected_rows)
                        .map_err(|(line, m)| (start, line, m))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err((0, 0, "a reader thread panicked".into())))
            })
            .collect()
    });
    let mut partials: Vec<Vec<Partial>> = Vec::with_capacity(parsed.len());
    for result in parsed {
        match result {
            Ok(columns) => partials.push(columns),
            Err((share_start, line, message)) => {
                // Lines before the share, counted only now that one is needed.
                let before = body[..share_start].iter().filter(|&&b| b == b'\n').count() as u64;
                return Err(csv_error(header_lines + before + line, message));
            }
        }
    }
    let (mut columns, fallback) = assemble(partials, names.len());
    if !fallback.is_empty() {
        for (column, values) in reparse_as_text(body, delimiter, &fallback)
            .map_err(|(line, m)| csv_error(header_lines + line, m))?
        {
            columns[column] = Some(values);
        }
    }
    let (mut names, rows, mut columns) = finish(names, columns);
    names.drain(..index_columns);
    columns.drain(..index_columns);
    Ok((names, rows, columns))
}

/// The table from its read columns. The row count is the first column's
/// length once every column is read: a column read again as text has no
/// count before that.
fn finish(names: Vec<String>, columns: Vec<Option<ColumnValues>>) -> ReadTable {
    let columns: Vec<Arc<ColumnValues>> = columns
        .into_iter()
        .map(|c| Arc::new(c.expect("every column is read")))
        .collect();
    let rows = columns.first().map_or(0, |c| c.len());
    (names, rows, columns)
}

/// The shares' partial columns joined into columns; the columns only a
/// text re-read gets right are None and listed.
fn assemble(
    mut partials: Vec<Vec<Partial>>,
    width: usize,
) -> (Vec<Option<ColumnValues>>, Vec<usize>) {
    let mut columns: Vec<Option<ColumnValues>> = Vec::with_capacity(width);
    let mut fallback = Vec::new();
    for column in 0..width {
        let shares: Vec<Partial> = partials
            .iter_mut()
            .map(|share| std::mem::replace(&mut share[column], Partial::Fallback))
            .collect();
        match join(shares) {
            Some(values) => columns.push(Some(values)),
            None => {
                fallback.push(column);
                columns.push(None);
            }
        }
    }
    (columns, fallback)
}

/// `threads` shares of `body`, each ending after a newline outside quotes.
fn split(body: &[u8], threads: usize, quoted: bool) -> Vec<(usize, usize)> {
    let targets: Vec<usize> = (1..threads).map(|k| body.len() * k / threads).collect();
    let mut cuts = Vec::with_capacity(threads + 1);
    cuts.push(0);
    if !quoted {
        for target in targets {
            let from = target.max(*cuts.last().expect("a start"));
            if let Some(offset) = body[from..].iter().position(|&b| b == b'\n') {
                cuts.push(from + offset + 1);
            }
        }
    } else {
        // Quotes toggle; a newline inside a quoted field is not a boundary
        // (an escaped quote `""` toggles twice).
        let mut in_quotes = false;
        let mut targets = targets.into_iter().peekable();
        for (i, &b) in body.iter().enumerate() {
            if b == b'"' {
                in_quotes = !in_quotes;
            } else if b == b'\n' && !in_quotes {
                if let Some(&target) = targets.peek() {
                    if i >= target {
                        cuts.push(i + 1);
                        while targets.peek().is_some_and(|&t| t <= i) {
                            targets.next();
                        }
                    }
                }
            }
        }
    }
    cuts.push(body.len());
    cuts.dedup();
    cuts.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Tokenises and types one share. Errors carry the line within the share.
/// `quoted` says whether the body holds a quote anywhere (scanned once);
/// a column's first values get room for `expected_rows`.
fn parse_share(
    share: &[u8],
    delimiter: u8,
    width: usize,
    quoted: bool,
    expected_rows: usize,
) -> Result<Vec<Partial>, (u64, String)> {
    let mut columns: Vec<Partial> = (0..width)
        .map(|_| Partial::Unknown {
            missing: 0,
            exact: true,
        })
        .collect();
    if let Some(text) = plain_text(share, delimiter, quoted) {
        read_plain(text, delimiter, &mut columns, expected_rows)?;
        return Ok(columns);
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(share);
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err((e.position().map_or(0, |p| p.line()), e.to_string())),
        }
        let line = || record.position().map_or(0, |p| p.line());
        let blank = record.len() == 1
            && std::str::from_utf8(&record[0]).is_ok_and(|f| is_blank_line(f, delimiter));
        if blank {
            continue;
        }
        if record.len() > width {
            return Err((
                line(),
                format!(
                    "found record with {} fields where {width} are expected (the header's names, and any index fields the first record has)",
                    record.len()
                ),
            ));
        }
        // A short record's missing fields are missing values, as pandas
        // reads them.
        for (i, column) in columns.iter_mut().enumerate() {
            let text = std::str::from_utf8(record.get(i).unwrap_or_default())
                .map_err(|_| (line(), "invalid UTF-8 in a field".to_string()))?;
            column.push(text, expected_rows);
        }
    }
    Ok(columns)
}

/// `share` as text when splitting it on newlines and the delimiter reads
/// it as the `csv` crate does: valid UTF-8, no quote, and every carriage
/// return the end of a line. Most files are; the state machine is then
/// wasted work.
fn plain_text(share: &[u8], delimiter: u8, quoted: bool) -> Option<&str> {
    if quoted || !delimiter.is_ascii() || matches!(delimiter, b'"' | b'\r' | b'\n') {
        return None;
    }
    if memchr::memchr_iter(b'\r', share).any(|at| share.get(at + 1) != Some(&b'\n')) {
        return None;
    }
    std::str::from_utf8(share).ok()
}

/// Splits a `plain_text` share into records and fields and types them.
/// Like the `csv` crate it skips empty lines and counts lines from 1 for
/// errors.
///
/// A field of a column read as floats so far is parsed where it starts,
/// and the parse itself finds where it ends: when the number is followed
/// by the delimiter or the end of the line, it is the whole field, and the
/// scan for the delimiter is saved (with the field's trimming and the
/// column's dispatch). Anything else (text, spaces, `inf`, a missing
/// value) is cut at the next delimiter and typed field by field.
fn read_plain(
    text: &str,
    delimiter: u8,
    columns: &mut [Partial],
    expected_rows: usize,
) -> Result<(), (u64, String)> {
    let width = columns.len();
    let bytes = text.as_bytes();
    let mut line = 1u64;
    let mut line_start = 0;
    let mut column = 0;
    let mut at = 0;
    let wrong_width = |line_number: u64, record: &str| {
        (
            line_number,
            format!(
                "found record with {} fields where {width} are expected (the header's names, and any index fields the first record has)",
                record.split(delimiter as char).count()
            ),
        )
    };
    loop {
        // Where the field starting at `at` ends (at the delimiter, the
        // newline, or the end of the text), if it was read as a number.
        let number_end = match columns.get_mut(column) {
            Some(Partial::Float(values)) => {
                whole_number(bytes, at, delimiter).map(|(value, end)| {
                    values.push(value);
                    end
                })
            }
            _ => None,
        };
        let end = match number_end {
            Some(end) => end,
            None => {
                let end =
                    memchr::memchr2(delimiter, b'\n', &bytes[at..]).map_or(bytes.len(), |n| at + n);
                let at_line_end = end == bytes.len() || bytes[end] == b'\n';
                let mut field = &text[at..end];
                if at_line_end {
                    field = field.strip_suffix('\r').unwrap_or(field);
                    if column == 0 && is_blank_line(field, delimiter) {
                        // An empty or blank line (or the end after the last
                        // newline), which pandas skips.
                        if end == bytes.len() {
                            return Ok(());
                        }
                        line += 1;
                        line_start = end + 1;
                        at = end + 1;
                        continue;
                    }
                }
                match columns.get_mut(column) {
                    Some(partial) => partial.push(field, expected_rows),
                    None => {
                        let record_end =
                            memchr::memchr(b'\n', &bytes[end..]).map_or(bytes.len(), |n| end + n);
                        return Err(wrong_width(line, &text[line_start..record_end]));
                    }
                }
                end
            }
        };
        if end == bytes.len() || bytes[end] == b'\n' {
            // A short record's missing fields are missing values, as pandas
            // reads them.
            for partial in &mut columns[column + 1..] {
                partial.push("", expected_rows);
            }
            if end == bytes.len() {
                return Ok(());
            }
            column = 0;
            line += 1;
            line_start = end + 1;
        } else {
            column += 1;
        }
        at = end + 1;
    }
}

/// The finite number that is the whole field starting at `at`, and where
/// the field ends (the delimiter, the newline, or the end of `bytes`); a
/// `\r` before the newline ends it too, as the line's end. None for
/// anything else, which the caller cuts and types the general way. Reads
/// exactly what `parse_float_field` reads: the parse stops where its
/// grammar does, so a field it reads whole is one `str::parse` accepts.
fn whole_number(bytes: &[u8], at: usize, delimiter: u8) -> Option<(f64, usize)> {
    let (value, used) = fast_float2::parse_partial::<f64, _>(&bytes[at..]).ok()?;
    let end = at + used;
    let end = match bytes.get(end) {
        None => end,
        Some(&b) if b == delimiter || b == b'\n' => end,
        Some(b'\r') if bytes.get(end + 1) == Some(&b'\n') => end + 1,
        Some(_) => return None,
    };
    (used > 0 && value.is_finite()).then_some((value, end))
}

/// The shares of one column as one column, or None when their kinds mix
/// in a way only a text re-read gets right.
fn join(shares: Vec<Partial>) -> Option<ColumnValues> {
    let any = |f: fn(&Partial) -> bool| shares.iter().any(f);
    if any(|p| matches!(p, Partial::Fallback)) {
        return None;
    }
    let numeric = shares.iter().all(|p| {
        matches!(
            p,
            Partial::Unknown { .. } | Partial::Int(_) | Partial::Float(_)
        )
    });
    if numeric {
        let integer = shares.iter().all(|p| matches!(p, Partial::Int(_)));
        // The first share's vector is kept and grown (not copied).
        let mut values = Vec::new();
        for share in shares {
            match share {
                Partial::Unknown { missing, .. } => {
                    values.extend(std::iter::repeat_n(f64::NAN, missing))
                }
                Partial::Int(v) | Partial::Float(v) if values.is_empty() => values = v,
                Partial::Int(v) | Partial::Float(v) => values.extend(v),
                _ => unreachable!("numeric shares"),
            }
        }
        if values.is_empty() {
            // No rows: what `csv_column` makes of no fields.
            return Some(csv_column(Vec::new()));
        }
        return Some(ColumnValues::Numeric { values, integer });
    }
    if shares.iter().all(|p| matches!(p, Partial::Bool(_))) {
        let codes = shares
            .into_iter()
            .flat_map(|p| match p {
                Partial::Bool(c) => c,
                _ => unreachable!("boolean shares"),
            })
            .collect();
        return Some(ColumnValues::Boolean { codes });
    }
    let text = shares.iter().all(|p| {
        matches!(
            p,
            Partial::Text { .. } | Partial::Unknown { exact: true, .. }
        )
    });
    if !text {
        return None;
    }
    // The first share's codes and dictionary are kept (its codes mean the
    // same in the joined dictionary) and the others appended to them.
    let mut shares = shares.into_iter();
    let (mut codes, mut dictionary, mut index) = match shares.next() {
        Some(Partial::Text {
            codes,
            dictionary,
            index,
        }) => (codes, dictionary, index),
        Some(Partial::Unknown { missing, .. }) => (
            vec![MISSING_CODE; missing],
            Vec::new(),
            LabelIndex::default(),
        ),
        _ => unreachable!("text shares"),
    };
    for share in shares {
        match share {
            Partial::Unknown { missing, .. } => {
                codes.extend(std::iter::repeat_n(MISSING_CODE, missing))
            }
            Partial::Text {
                codes: local,
                dictionary: labels,
                ..
            } => {
                let remap: Vec<u32> = labels
                    .iter()
                    .map(|label| intern(label, &mut dictionary, &mut index))
                    .collect();
                codes.extend(local.into_iter().map(|c| {
                    if c == MISSING_CODE {
                        c
                    } else {
                        remap[c as usize]
                    }
                }));
            }
            _ => unreachable!("text shares"),
        }
    }
    Some(ColumnValues::Strings { codes, dictionary })
}

/// Reads `columns` of the body again, every field as text, typed by
/// `csv_column`.
fn reparse_as_text(
    body: &[u8],
    delimiter: u8,
    columns: &[usize],
) -> Result<Vec<(usize, ColumnValues)>, (u64, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut fields: Vec<Vec<String>> = vec![Vec::new(); columns.len()];
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err((e.position().map_or(0, |p| p.line()), e.to_string())),
        }
        if record.len() == 1 && is_blank_line(&record[0], delimiter) {
            continue;
        }
        for (out, &column) in fields.iter_mut().zip(columns) {
            out.push(record.get(column).unwrap_or_default().to_string());
        }
    }
    Ok(columns
        .iter()
        .zip(fields)
        .map(|(&c, f)| (c, csv_column(f)))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use crate::dataset::{ColumnValues, Table};

    fn same(a: &ColumnValues, b: &ColumnValues) -> bool {
        match (a, b) {
            (
                ColumnValues::Numeric {
                    values: x,
                    integer: i,
                },
                ColumnValues::Numeric {
                    values: y,
                    integer: j,
                },
            ) => {
                i == j
                    && x.len() == y.len()
                    && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            (
                ColumnValues::Strings {
                    codes: c,
                    dictionary: d,
                },
                ColumnValues::Strings {
                    codes: e,
                    dictionary: f,
                },
            ) => {
                c.len() == e.len()
                    && c.iter().zip(e).all(|(&p, &q)| {
                        let label = |code: u32, dict: &[String]| {
                            (code != crate::dataset::MISSING_CODE)
                                .then(|| dict[code as usize].clone())
                        };
                        label(p, d) == label(q, f)
                    })
            }
            (ColumnValues::Boolean { codes: c }, ColumnValues::Boolean { codes: e }) => c == e,
            _ => false,
        }
    }

    /// The parallel reader types every column as the field-by-field
    /// reader does, over kinds that change between and within shares.
    #[test]
    fn parallel_reading_equals_reading_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        for (rows, quoted) in [(10, false), (60_000, false), (60_000, true)] {
            let mut text =
                String::from("int,float,gaps,flag,cat,late_text,late_na,spaces,all_na,late_bool\n");
            for i in 0..rows {
                let late = i > rows * 3 / 4;
                let cat = if quoted && i % 7 == 0 {
                    "\"multi\nline, quoted\"".to_string()
                } else {
                    format!("c{}", i % 13)
                };
                let _ = writeln!(
                    text,
                    "{i},{},{},{},{cat},{},{},{},,{}",
                    i as f64 * 0.37 - 11.0,
                    if i % 10 == 3 {
                        "NA".to_string()
                    } else {
                        format!("{:.3}", i as f64 / 7.0)
                    },
                    if i % 2 == 0 { "True" } else { "false" },
                    if late { "word" } else { "12" },
                    if late && i % 5 == 0 { "" } else { "1.5" },
                    if i % 3 == 0 { " " } else { "" },
                    if late { "True" } else { "" },
                );
            }
            let path = dir.path().join(format!("t{rows}{quoted}.csv"));
            std::fs::write(&path, &text).unwrap();
            let fast = Table::open(&path).unwrap();
            let slow = Table::open_csv_by_fields(&path, b',').unwrap();
            assert_eq!(fast.rows(), slow.rows());
            assert_eq!(fast.column_names(), slow.column_names());
            for name in fast.column_names() {
                let (a, b) = (fast.column(name).unwrap(), slow.column(name).unwrap());
                assert!(
                    same(&a, &b),
                    "{rows} rows, quoted {quoted}: column {name} differs: {a:?} vs {b:?}"
                );
            }
        }
    }

    /// Line endings, blank lines, padded fields and text with a lone
    /// carriage return or a quote: the plain splitter and the `csv` crate
    /// read each file alike (or both refuse it).
    #[test]
    fn plain_splitting_reads_as_the_csv_crate_does() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            "a,b,c\r\n1,x,2.5\r\n2,y,NA\r\n",
            "a,b,c\n1,x,2.5\n\n\n2,y, 3 \n3,,inf",
            "a,b,c\n1,x,2.5\r2,y,3\n",
            "a,b,c\n1,\"x,y\",2.5\n2,y,3\n",
            "a,b,c\n1, x ,1e3\n2,\u{e9}t\u{e9},-0.5\n",
            "a,b,c\n1,x,2.5\n2,y\n",
            "a,b,c\n1,x,2.5,9\n",
            "a\tb\tc\n1\tx\t2\n",
            // Float columns read where the number starts, then fields the
            // parse does not read whole.
            "a,b\n1.5,x\n2.5,y\n 2.5,w\n2.5 ,v\ninf,u\n-inf,t\nnan,r\n,q\n3.5,p\r\n4.5,o",
            "a,b\n1.5,x\n1e5x,z\n",
            "a,b\n1.5,x\n1e309,z\n",
            "a,b\n1.5,1.5\r\n-0.0,2e-3\r\n.5,5.\r\n+1,1E+2\n",
            "a,b\n1.5,2.5\n3.5\n",
            "a,b\n1.5,2.5\n3.5,4.5,5.5\n",
            " \n\t\na,b\n1,2\n",
        ];
        for (i, text) in files.iter().enumerate() {
            let (delimiter, extension) = if text.contains('\t') {
                (b'\t', "tsv")
            } else {
                (b',', "csv")
            };
            let path = dir.path().join(format!("f{i}.{extension}"));
            std::fs::write(&path, text).unwrap();
            let fast = Table::open(&path);
            let slow = Table::open_csv_by_fields(&path, delimiter);
            match (fast, slow) {
                (Ok(fast), Ok(slow)) => {
                    assert_eq!(fast.rows(), slow.rows(), "{text:?}");
                    for name in slow.column_names() {
                        let (a, b) = (fast.column(name).unwrap(), slow.column(name).unwrap());
                        assert!(same(&a, &b), "{text:?}: {name}: {a:?} vs {b:?}");
                    }
                }
                (Err(_), Err(_)) => {}
                (fast, slow) => panic!("{text:?}: {:?} vs {:?}", fast.err(), slow.err()),
            }
        }
    }

    /// Files large enough to be streamed, with lines longer than a chunk
    /// and lengths that put the shares' cuts everywhere in a line, read as
    /// field by field; a quote or a mixed column sends them to the
    /// whole-file reader, with the same result.
    #[test]
    fn streamed_reading_equals_reading_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (0, "plain"),
            (1, "plain"),
            (7, "plain"),
            (3, "long line"),
            (0, "quote"),
            (0, "mixed"),
            (0, "no final newline"),
        ];
        for (padding, case) in cases {
            let mut text = String::from("id,x,label,maybe\r\n");
            let mut i = 0;
            while text.len() < super::STREAM_BYTES as usize + 300_000 {
                let label = match (case, i) {
                    ("long line", 70_000) => "y".repeat(super::CHUNK_BYTES * 2 + 5),
                    ("quote", 90_000) => "\"q\"".to_string(),
                    _ => format!("l{}{}", i % 11, "p".repeat(padding)),
                };
                let maybe = match (case, i) {
                    ("mixed", 80_000) => "word".to_string(),
                    _ if i % 9 == 0 => String::new(),
                    _ => format!("{}", i as f64 / 3.0),
                };
                let _ = write!(text, "{i},{:.4},{label},{maybe}", (i as f64).sqrt());
                text.push_str(if i % 5 == 0 { "\r\n" } else { "\n" });
                if i % 10_000 == 0 {
                    text.push('\n'); // blank lines are skipped
                }
                i += 1;
            }
            if case == "no final newline" {
                text.truncate(text.trim_end().len());
            }
            let path = dir.path().join(format!("{case}{padding}.csv"));
            std::fs::write(&path, &text).unwrap();
            let streamed = super::read_streaming(&path, b',').unwrap().is_some();
            assert_eq!(
                streamed,
                !matches!(case, "quote" | "mixed"),
                "{case}: streamed {streamed}"
            );
            let fast = Table::open(&path).unwrap();
            let slow = Table::open_csv_by_fields(&path, b',').unwrap();
            assert_eq!(fast.rows(), slow.rows(), "{case}");
            assert_eq!(fast.column_names(), slow.column_names());
            for name in slow.column_names() {
                let (a, b) = (fast.column(name).unwrap(), slow.column(name).unwrap());
                assert!(same(&a, &b), "{case} {padding}: column {name} differs");
            }
        }
    }

    #[test]
    fn a_long_record_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("a,b\n");
        for i in 0..200_000 {
            text.push_str(&format!("{i},{i}\n"));
        }
        text.push_str("1,2,3\n");
        let path = dir.path().join("long.csv");
        std::fs::write(&path, text).unwrap();
        let error = Table::open(&path)
            .err()
            .expect("a record longer than the header is refused")
            .to_string();
        assert!(
            error.contains("line 200002") && error.contains("3 fields"),
            "{error}"
        );
    }

    /// pandas' implicit index: when the first record has more fields than
    /// the header has names, its leading fields (and every record's) are
    /// the index, not columns; by every path, small and streamed. What
    /// pandas reads, recorded: `pd.read_csv(io.StringIO("a,b\n\n1,2,x\n3,4\n"))`
    /// has columns a = [2, 4], b = ["x", NaN].
    #[test]
    fn leading_fields_beyond_the_header_are_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut large = String::from("a,b\n");
        let mut rows = 0;
        while large.len() < super::STREAM_BYTES as usize + 100_000 {
            large.push_str(&format!("\"{rows}\",2,x\n\"{}\",4\n", rows + 1));
            rows += 2;
        }
        let two_levels = "a,b\n\nk,1,2,x\nk,3,4\n".to_string();
        for (name, text, expected_rows) in [
            ("small.csv", "a,b\n\n1,2,x\n3,4\n".to_string(), 2),
            ("two.csv", two_levels, 2),
            ("large.csv", large, rows),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &text).unwrap();
            let table = Table::open(&path).unwrap();
            assert_eq!(table.column_names(), ["a", "b"], "{name}");
            assert_eq!(table.rows(), expected_rows, "{name}");
            let ColumnValues::Numeric { values: a, .. } = &*table.column("a").unwrap() else {
                panic!("{name}: a is numeric")
            };
            assert_eq!(&a[..2], &[2.0, 4.0], "{name}");
            let ColumnValues::Strings { codes, dictionary } = &*table.column("b").unwrap() else {
                panic!("{name}: b is text")
            };
            assert_eq!(dictionary[codes[0] as usize], "x");
            assert_eq!(codes[1], crate::dataset::MISSING_CODE);
            let slow = Table::open_csv_by_fields(&path, b',').unwrap();
            assert_eq!(slow.column_names(), table.column_names(), "{name}");
            assert_eq!(slow.rows(), expected_rows, "{name}");
        }
        // A record longer than the first one is still refused, naming its line.
        let path = dir.path().join("longer.csv");
        std::fs::write(&path, "a,b\n1,2,x\n3,4,y,z\n").unwrap();
        let error = Table::open(&path).err().expect("refused").to_string();
        assert!(error.contains("line 3"), "{error}");
    }

    /// Short records are padded with missing values and blank lines (spaces
    /// and tabs only) skipped, as `pandas.read_csv` reads them (its output
    /// on these files, recorded), by every path: plain, quoted, streamed.
    #[test]
    fn short_records_and_blank_lines_read_as_pandas_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut plain = String::from("a,b,c\n");
        let mut quoted = String::from("a,b,c\n");
        let mut rows = 0;
        while plain.len() < super::STREAM_BYTES as usize + 100_000 {
            plain.push_str("1,2.5,x\n3\n  \n\t\r\n4,5.5\n");
            quoted.push_str("1,2.5,\"x\"\n3\n  \n\t\r\n4,5.5\n");
            rows += 3;
        }
        for (name, text) in [
            (
                "small.csv",
                "a,b,c\n1,2.5,x\n3\n  \n\t\r\n4,5.5\n".to_string(),
            ),
            ("plain.csv", plain),
            ("quoted.csv", quoted),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &text).unwrap();
            let table = Table::open(&path).unwrap();
            let expected_rows = if name == "small.csv" { 3 } else { rows };
            assert_eq!(table.rows(), expected_rows, "{name}");
            let ColumnValues::Numeric { values: b, .. } = &*table.column("b").unwrap() else {
                panic!("{name}: b is numeric")
            };
            assert_eq!(b[0], 2.5);
            assert!(b[1].is_nan() && b[2] == 5.5, "{name}: {:?}", &b[..3]);
            let ColumnValues::Strings { codes, dictionary } = &*table.column("c").unwrap() else {
                panic!("{name}: c is text")
            };
            assert_eq!(dictionary[codes[0] as usize], "x");
            assert!(
                codes[1..3]
                    .iter()
                    .all(|&c| c == crate::dataset::MISSING_CODE),
                "{name}"
            );
            let slow = Table::open_csv_by_fields(&path, b',').unwrap();
            assert_eq!(slow.rows(), expected_rows, "{name}");
        }
    }
}
