//! Forwarding a child process's text output to the log while keeping its
//! last lines for error messages (worker stderr, pip's output).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longer lines are cut, in the tail and in the log.
const LINE_MAX_BYTES: usize = 2000;

/// The last lines a process wrote, oldest first.
#[derive(Debug)]
pub(crate) struct LineTail {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
}

impl LineTail {
    pub(crate) fn new(capacity: usize) -> LineTail {
        LineTail {
            capacity,
            lines: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines joined with newlines.
    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Reads `output` line by line until EOF, handing each line (lossily
/// decoded, without its line end) to `log` and keeping it in `tail`.
pub(crate) fn forward_lines(output: impl Read, tail: &LineTail, mut log: impl FnMut(&str)) {
    let mut output = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line_capped(&mut output, &mut line, LINE_MAX_BYTES) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        log(text);
        tail.push(text.to_owned());
    }
}

/// Reads one line into `line`, keeping at most `max_bytes` of it and
/// skipping the rest, so that output without newlines cannot grow memory
/// without bound. Returns the bytes consumed (0 at EOF).
pub(crate) fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max_bytes: usize,
) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buffer.is_empty() {
            return Ok(consumed);
        }
        let (chunk, found_newline) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(idx) => (&buffer[..=idx], true),
            None => (buffer, false),
        };
        let room = max_bytes.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n_bytes = chunk.len();
        reader.consume(n_bytes);
        consumed += n_bytes;
        if found_newline {
            return Ok(consumed);
        }
    }
}

/// Joins threads that read a child's pipes, waiting at most `grace` in
/// all: they end at once when the child is gone, unless a process the
/// child started still holds the pipes, in which case they are left to end
/// when that process does. Returns whether every thread was joined.
pub(crate) fn join_readers(
    threads: impl IntoIterator<Item = JoinHandle<()>>,
    grace: Duration,
) -> bool {
    let deadline = Instant::now() + grace;
    let mut all_joined = true;
    for thread in threads {
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            all_joined = false;
        }
    }
    all_joined
}
