//! The reading phase's bookkeeping, free of I/O: the rows taken from the manifest, the chunk
//! they are cut into, the round of chunks waiting to be sent, and where an ending job's plan
//! closes. The planner ([`super::Planning::read`]) feeds it items and does the writes and
//! sends it asks for.

use super::CHUNKS_PER_ROUND;
use crate::chunk::{Chunk, Chunker, Task};

/// What one manifest item did to the open chunk.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Taken {
    /// The chunk it completed (a row that did not fit, or a scan boundary ending the open one).
    pub cut: Option<Chunk>,
    /// The item is a place the next invocation may start at: a chunk boundary.
    pub boundary: bool,
}

pub(super) struct Reading {
    chunker: Chunker,
    /// The row number of the next row: every row before it is in a chunk cut or the open one.
    rows: u64,
    /// Rows in the open chunk.
    open: usize,
    /// Chunks cut and not yet sent, and their tasks.
    round: Vec<Chunk>,
    round_tasks: usize,
    /// The most tasks held at once (open chunk, round, and those in flight).
    max_held: usize,
    /// An ending job's plan closes when this chunk number is reached.
    close_at: Option<u64>,
}

impl Reading {
    /// Reading from chunk `first_chunk`, whose first row is `first_row`.
    pub fn new(
        job_id: &str,
        chunk_size: usize,
        first_chunk: u64,
        first_row: u64,
        close_at: Option<u64>,
    ) -> Self {
        Self {
            chunker: Chunker::new(job_id, chunk_size, first_chunk),
            rows: first_row,
            open: 0,
            round: Vec::new(),
            round_tasks: 0,
            max_held: 0,
            close_at,
        }
    }

    /// Takes one item: a row (`Some`) joins the open chunk, opening the next one when the open
    /// one is full; a scan boundary (`None`) ends the open chunk (if it has rows) and is a place
    /// to stop even if it has none. Either way, at a boundary the next invocation may start at
    /// the item, with row number [`Reading::rows`].
    pub fn take(&mut self, task: Option<Task>) -> Taken {
        match task {
            Some(task) => {
                debug_assert_eq!(task.row, self.rows);
                self.open += 1;
                let cut = self.chunker.push(task);
                if cut.is_some() {
                    self.open = 1;
                }
                Taken {
                    boundary: cut.is_some(),
                    cut,
                }
            }
            None => {
                self.open = 0;
                Taken {
                    cut: self.chunker.finish(),
                    boundary: true,
                }
            }
        }
    }

    /// Adds a cut chunk to the round. `true` when it is the last of an ending job's plan: the
    /// rows from the next chunk on are not part of the job.
    pub fn keep(&mut self, chunk: Chunk) -> bool {
        self.round_tasks += chunk.tasks.len();
        self.round.push(chunk);
        self.close_at == Some(self.chunker.next_chunk())
    }

    /// The item just taken was a row (`true`) or a boundary: the next row's number moves on.
    pub fn advance(&mut self, row: bool) {
        self.rows += u64::from(row);
    }

    /// Notes how many tasks are held, with `in_flight` more being sent.
    pub fn note_held(&mut self, in_flight: usize) {
        self.max_held = self.max_held.max(self.open + self.round_tasks + in_flight);
    }

    /// A round is full: time to send it (and to look at the job and the queues again).
    pub fn round_full(&self) -> bool {
        self.round.len() >= CHUNKS_PER_ROUND
    }

    /// The chunks waiting to be sent, handed over.
    pub fn take_round(&mut self) -> Vec<Chunk> {
        self.round_tasks = 0;
        std::mem::take(&mut self.round)
    }

    /// The open chunk, cut as it is (the manifest ended).
    pub fn finish(&mut self) -> Option<Chunk> {
        self.chunker.finish()
    }

    /// Every chunk is sent: none is open.
    pub fn all_sent(&mut self) {
        self.open = 0;
    }

    /// The row number of the next row.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The rows in chunks cut (the open chunk's are not).
    pub fn rows_cut(&self) -> u64 {
        self.rows - self.open as u64
    }

    /// The number of the next chunk: the chunks cut are those below it.
    pub fn chunks(&self) -> u64 {
        self.chunker.next_chunk()
    }

    pub fn max_held(&self) -> usize {
        self.max_held
    }

    /// An ending job's plan closes where it will.
    pub fn closing(&self) -> bool {
        self.close_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(row: u64) -> Task {
        Task {
            row,
            bucket: "b".into(),
            key: format!("k{row}"),
            version_id: None,
            invalid: None,
        }
    }

    /// Feeds rows `from..to` and returns the chunks cut.
    fn rows(r: &mut Reading, from: u64, to: u64) -> Vec<Chunk> {
        let mut cut = Vec::new();
        for row in from..to {
            let t = r.take(Some(task(row)));
            assert_eq!(t.boundary, t.cut.is_some());
            if let Some(c) = t.cut {
                cut.push(c);
            }
            r.advance(true);
        }
        cut
    }

    #[test]
    fn rows_are_cut_into_chunks_of_the_size_numbered_from_the_first_chunk() {
        let mut r = Reading::new("j", 3, 5, 15, None);
        let cut = rows(&mut r, 15, 22);
        let numbers: Vec<u64> = cut.iter().map(|c| c.chunk).collect();
        assert_eq!(numbers, [5, 6]);
        assert_eq!(
            cut[0].tasks.iter().map(|t| t.row).collect::<Vec<_>>(),
            [15, 16, 17]
        );
        // Row 21 is open in chunk 7: read, not cut.
        assert_eq!((r.rows(), r.rows_cut(), r.chunks()), (22, 21, 7));
        let last = r.finish().expect("the open chunk");
        assert_eq!((last.chunk, last.tasks.len()), (7, 1));
        assert_eq!(r.chunks(), 8);
    }

    #[test]
    fn a_scan_boundary_ends_the_open_chunk_and_is_a_place_to_stop_even_when_it_is_empty() {
        let mut r = Reading::new("j", 10, 0, 0, None);
        rows(&mut r, 0, 2);
        let t = r.take(None);
        assert!(t.boundary);
        assert_eq!(t.cut.map(|c| c.tasks.len()), Some(2));
        assert_eq!(r.rows_cut(), 2, "no row is open after a boundary");
        let again = r.take(None);
        assert_eq!(
            again,
            Taken {
                cut: None,
                boundary: true
            }
        );
        assert_eq!(r.chunks(), 1);
    }

    #[test]
    fn an_ending_jobs_plan_closes_at_the_chunk_it_was_sent_through() {
        let mut r = Reading::new("j", 2, 0, 0, Some(2));
        let mut closed_at = None;
        for row in 0..10 {
            let t = r.take(Some(task(row)));
            if let Some(c) = t.cut {
                let n = c.chunk;
                if r.keep(c) {
                    closed_at = Some(n);
                    break;
                }
            }
            r.advance(true);
        }
        // Chunks 0 and 1 (rows 0..4) are the job's; row 4, read into chunk 2, is not.
        assert_eq!(closed_at, Some(1));
        assert_eq!(r.take_round().len(), 2);
        assert_eq!((r.rows(), r.chunks()), (4, 2));
    }

    #[test]
    fn a_round_fills_at_ten_chunks_and_the_tasks_held_count_the_open_chunk_round_and_in_flight() {
        let mut r = Reading::new("j", 1, 0, 0, None);
        for row in 0..=CHUNKS_PER_ROUND as u64 {
            let t = r.take(Some(task(row)));
            if let Some(c) = t.cut {
                assert!(!r.keep(c), "no plan closes");
            }
            r.advance(true);
            r.note_held(100);
        }
        assert!(r.round_full());
        // One open, ten in the round, a hundred in flight.
        assert_eq!(r.max_held(), 111);
        assert_eq!(r.take_round().len(), CHUNKS_PER_ROUND);
        assert!(!r.round_full());
        r.note_held(0);
        assert_eq!(r.max_held(), 111, "the most ever held");
    }
}
