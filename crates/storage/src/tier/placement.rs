//! Where a new segment goes: the first tier when it fits under that tier's capacity, else the
//! second tier; within a tier, the directory with the most free capacity. A full first tier
//! never blocks a producer: the segment simply goes to the second tier.

use super::{DirUsage, TierId};

/// The outcome of placing a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In this tier, in the directory at this index.
    In(TierId, usize),
    /// Neither tier has room: the append fails with KAFKA_STORAGE_ERROR until space returns.
    Full,
}

/// The directory with the most free bytes that can take `segment_bytes`.
fn roomiest(dirs: &[DirUsage], segment_bytes: u64) -> Option<usize> {
    dirs.iter()
        .enumerate()
        .filter(|(_, d)| d.free_bytes() >= segment_bytes)
        .max_by(|(ia, a), (ib, b)| a.free_bytes().cmp(&b.free_bytes()).then(ib.cmp(ia)))
        .map(|(i, _)| i)
}

/// Places a segment of (up to) `segment_bytes`. `second` is empty when there is no second tier.
pub fn place(first: &[DirUsage], second: &[DirUsage], segment_bytes: u64) -> Placement {
    if let Some(i) = roomiest(first, segment_bytes) {
        return Placement::In(TierId::First, i);
    }
    match roomiest(second, segment_bytes) {
        Some(i) => Placement::In(TierId::Second, i),
        None => Placement::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(capacity: u64, used: u64) -> DirUsage {
        DirUsage {
            capacity_bytes: capacity,
            used_bytes: used,
        }
    }

    #[test]
    fn first_tier_while_it_has_room() {
        assert_eq!(
            place(&[dir(100, 0)], &[dir(1000, 0)], 50),
            Placement::In(TierId::First, 0)
        );
        assert_eq!(
            place(&[dir(100, 50)], &[dir(1000, 0)], 50),
            Placement::In(TierId::First, 0)
        );
    }

    #[test]
    fn full_first_tier_sends_segments_to_the_second() {
        assert_eq!(
            place(&[dir(100, 51)], &[dir(1000, 0)], 50),
            Placement::In(TierId::Second, 0)
        );
        assert_eq!(
            place(&[], &[dir(1000, 0)], 50),
            Placement::In(TierId::Second, 0)
        );
    }

    #[test]
    fn both_full_is_full() {
        assert_eq!(
            place(&[dir(100, 100)], &[dir(100, 90)], 50),
            Placement::Full
        );
        assert_eq!(place(&[dir(100, 100)], &[], 50), Placement::Full);
    }

    #[test]
    fn several_paths_pick_the_most_free_capacity() {
        let first = [dir(100, 80), dir(300, 100), dir(200, 0)];
        assert_eq!(
            place(&first, &[], 10),
            Placement::In(TierId::First, 1),
            "free 20, 200, 200: ties go to the earlier"
        );
        let first = [dir(100, 80), dir(300, 50), dir(200, 0)];
        assert_eq!(place(&first, &[], 10), Placement::In(TierId::First, 1));
        // A directory without room for the whole segment is skipped even if others are fuller.
        let second = [dir(1000, 995), dir(100, 40)];
        assert_eq!(place(&[], &second, 50), Placement::In(TierId::Second, 1));
    }
}
