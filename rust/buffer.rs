//! The byte queue behind fastspawn's `StreamReader`: appended at the back, consumed
//! from the front, searched for separators with `memchr`.
//!
//! Consuming advances a start offset instead of moving bytes; the live bytes are moved
//! to the front only when the dead prefix is at least as large as they are, so each
//! byte is moved at most once per doubling and both ends are amortised O(1).

use memchr::memmem;

#[derive(Debug, Default)]
pub struct ByteQueue {
    data: Vec<u8>,
    start: usize,
}

impl ByteQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.data.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queued bytes, oldest first.
    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.start..]
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.append_with(|data| data.extend_from_slice(bytes));
    }

    /// Appends through `fill`, which gets the backing vector to append to (after the
    /// consumed prefix was dropped if it dominates).
    pub fn append_with<T>(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        if self.start > 0 && self.start >= self.len() {
            self.data.drain(..self.start);
            self.start = 0;
        }
        fill(&mut self.data)
    }

    /// Drops the first `n` bytes (all of them if fewer are queued).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        self.start += n;
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
    }

    /// The queued bytes as a vector (the consumed prefix dropped, the allocation kept).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.data.drain(..self.start);
        self.data
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
    }

    /// Releases the memory of an empty queue (after a burst).
    pub fn shrink_if_empty(&mut self, keep: usize) {
        if self.is_empty() && self.data.capacity() > keep {
            self.data = Vec::new();
        }
    }

    /// Position of the first `needle` at or after `from`, as `bytearray.find` gives it.
    pub fn find(&self, needle: &[u8], from: usize) -> Option<usize> {
        let hay = self.as_slice();
        if from > hay.len() {
            return None;
        }
        let rest = &hay[from..];
        let found = match needle {
            [] => Some(0),
            [byte] => memchr::memchr(*byte, rest),
            _ => memmem::find(rest, needle),
        };
        found.map(|i| i + from)
    }

    /// Ends (exclusive) of the complete lines queued, at most `max_bytes` worth, but at
    /// least one line if one is complete.
    pub fn line_ends(&self, sep: u8, max_bytes: usize) -> Vec<usize> {
        let hay = self.as_slice();
        let mut ends = Vec::new();
        for i in memchr::memchr_iter(sep, hay) {
            if !ends.is_empty() && i + 1 > max_bytes {
                break;
            }
            ends.push(i + 1);
        }
        ends
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_vec_drops_the_consumed_prefix() {
        let mut q = ByteQueue::new();
        q.extend(b"abcdef");
        q.consume(2);
        assert_eq!(q.into_vec(), b"cdef");
    }

    #[test]
    fn fifo_order_survives_compaction() {
        let mut q = ByteQueue::new();
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for round in 0u32..200 {
            let chunk: Vec<u8> = (0..(round * 7 % 301)).map(|i| (i + round) as u8).collect();
            q.extend(&chunk);
            expected.extend_from_slice(&chunk);
            let take = (round as usize * 13) % (q.len() + 1);
            got.extend_from_slice(&q.as_slice()[..take]);
            q.consume(take);
        }
        got.extend_from_slice(q.as_slice());
        assert_eq!(got, expected);
    }

    #[test]
    fn find_matches_bytearray_find() {
        let mut q = ByteQueue::new();
        q.extend(b"xxab\ncd\r\nef");
        q.consume(2);
        assert_eq!(q.find(b"\n", 0), Some(2));
        assert_eq!(q.find(b"\n", 3), Some(6));
        assert_eq!(q.find(b"\r\n", 0), Some(5));
        assert_eq!(q.find(b"zz", 0), None);
        assert_eq!(q.find(b"", 4), Some(4));
        assert_eq!(q.find(b"a", 100), None);
    }

    #[test]
    fn line_ends_respects_budget_but_returns_one_line() {
        let mut q = ByteQueue::new();
        q.extend(b"aaaa\nbb\nc\npartial");
        assert_eq!(q.line_ends(b'\n', 100), vec![5, 8, 10]);
        assert_eq!(q.line_ends(b'\n', 8), vec![5, 8]);
        assert_eq!(q.line_ends(b'\n', 1), vec![5]);
        q.clear();
        assert!(q.line_ends(b'\n', 100).is_empty());
    }
}
