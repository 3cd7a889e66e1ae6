//! The migration policy: Pafka's single watermark with a hysteresis band around it.
//!
//! The first tier's usage is kept near `threshold x capacity`. Above `threshold + band` the
//! oldest inactive first-tier segments move down until usage is at or below the threshold; below
//! `threshold - band` the newest second-tier segments move up while they fit under the threshold.
//! A promotion never lifts usage above the threshold and a demotion starts only above
//! `threshold + band`, so a segment moved one way cannot be moved back by the next decision
//! (no ping-pong), as long as the band is at least one segment wide (checked at startup).

/// `storage.migrate.threshold` and the band around it, as fractions of the first tier's capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationPolicy {
    /// None: never migrate (`storage.migrate.threshold=-1`).
    pub threshold: Option<f64>,
    pub hysteresis: f64,
}

/// What the workers should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Idle,
    /// Move first-tier segments down until usage is at or below `target_bytes`.
    Demote {
        target_bytes: u64,
    },
    /// Move second-tier segments up while usage stays at or below `target_bytes`.
    Promote {
        target_bytes: u64,
    },
}

impl MigrationPolicy {
    pub fn decide(&self, used_bytes: u64, capacity_bytes: u64) -> Decision {
        let Some(threshold) = self.threshold else {
            return Decision::Idle;
        };
        if capacity_bytes == 0 {
            return Decision::Idle;
        }
        let capacity = capacity_bytes as f64;
        let target = (threshold * capacity) as u64;
        let high = ((threshold + self.hysteresis).min(1.0) * capacity) as u64;
        let low = ((threshold - self.hysteresis).max(0.0) * capacity) as u64;
        if used_bytes > high {
            Decision::Demote {
                target_bytes: target,
            }
        } else if used_bytes < low {
            Decision::Promote {
                target_bytes: target,
            }
        } else {
            Decision::Idle
        }
    }
}

/// A segment as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// An opaque handle for the caller (an index into its own list).
    pub key: usize,
    pub size_bytes: u64,
    /// Active segments are never moved.
    pub active: bool,
}

/// First-tier segments to demote, oldest first (`oldest_first` is ordered by age), until usage
/// is at or below the target.
pub fn select_demotions(
    oldest_first: &[Candidate],
    mut used_bytes: u64,
    target_bytes: u64,
) -> Vec<usize> {
    let mut out = Vec::new();
    for c in oldest_first {
        if used_bytes <= target_bytes {
            break;
        }
        if c.active {
            continue;
        }
        out.push(c.key);
        used_bytes = used_bytes.saturating_sub(c.size_bytes);
    }
    out
}

/// Second-tier segments to promote, newest first, while usage stays at or below the target.
pub fn select_promotions(
    newest_first: &[Candidate],
    mut used_bytes: u64,
    target_bytes: u64,
) -> Vec<usize> {
    let mut out = Vec::new();
    for c in newest_first {
        if c.active {
            continue;
        }
        if used_bytes + c.size_bytes > target_bytes {
            // The newest data comes up first; an older segment that would fit does not jump
            // the queue, so that what sits on the fast tier is always the freshest.
            break;
        }
        out.push(c.key);
        used_bytes += c.size_bytes;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1 << 30;

    fn policy(threshold: f64, hysteresis: f64) -> MigrationPolicy {
        MigrationPolicy {
            threshold: Some(threshold),
            hysteresis,
        }
    }

    fn seg(key: usize, size: u64) -> Candidate {
        Candidate {
            key,
            size_bytes: size,
            active: false,
        }
    }

    #[test]
    fn watermark_with_band() {
        let p = policy(0.5, 0.1);
        assert_eq!(p.decide(5 * GB, 10 * GB), Decision::Idle);
        assert_eq!(p.decide(6 * GB, 10 * GB), Decision::Idle, "inside the band");
        assert_eq!(
            p.decide(6 * GB + 1, 10 * GB),
            Decision::Demote {
                target_bytes: 5 * GB
            }
        );
        assert_eq!(
            p.decide(4 * GB - 1, 10 * GB),
            Decision::Promote {
                target_bytes: 5 * GB
            }
        );
        assert_eq!(
            MigrationPolicy {
                threshold: None,
                hysteresis: 0.1
            }
            .decide(10 * GB, 10 * GB),
            Decision::Idle
        );
    }

    #[test]
    fn demotion_takes_the_oldest_inactive_until_under_target() {
        let segments = [
            seg(0, 2),
            seg(1, 2),
            Candidate {
                key: 2,
                size_bytes: 2,
                active: true,
            },
            seg(3, 2),
        ];
        assert_eq!(select_demotions(&segments, 9, 5), vec![0, 1]);
        assert_eq!(
            select_demotions(&segments, 11, 5),
            vec![0, 1, 3],
            "the active segment is skipped"
        );
        assert!(select_demotions(&segments, 5, 5).is_empty());
    }

    #[test]
    fn promotion_takes_the_newest_while_under_target() {
        let segments = [seg(9, 2), seg(8, 2), seg(7, 2)];
        assert_eq!(select_promotions(&segments, 1, 5), vec![9, 8]);
        assert!(select_promotions(&segments, 4, 5).is_empty());
    }

    /// Whatever the sizes, running the policy to a fixed point never moves a segment back.
    #[test]
    fn no_ping_pong() {
        let capacity = 100u64;
        let p = policy(0.5, 0.1);
        let sizes = [7u64, 9, 3, 10, 8, 6, 10, 4];
        // Every segment starts on the first tier, oldest first.
        let mut first: Vec<(usize, u64)> = sizes.iter().copied().enumerate().collect();
        let mut second: Vec<(usize, u64)> = Vec::new();
        let mut moves: Vec<(usize, bool)> = Vec::new();
        for _ in 0..10 {
            let used: u64 = first.iter().map(|s| s.1).sum();
            match p.decide(used, capacity / 2) {
                Decision::Idle => {}
                Decision::Demote { target_bytes } => {
                    let c: Vec<Candidate> = first.iter().map(|(k, s)| seg(*k, *s)).collect();
                    for k in select_demotions(&c, used, target_bytes) {
                        let i = first.iter().position(|s| s.0 == k).unwrap();
                        second.push(first.remove(i));
                        moves.push((k, false));
                    }
                }
                Decision::Promote { target_bytes } => {
                    let mut c: Vec<Candidate> = second.iter().map(|(k, s)| seg(*k, *s)).collect();
                    c.sort_by_key(|s| std::cmp::Reverse(s.key));
                    for k in select_promotions(&c, used, target_bytes) {
                        let i = second.iter().position(|s| s.0 == k).unwrap();
                        first.push(second.remove(i));
                        moves.push((k, true));
                    }
                }
            }
        }
        for (k, up) in &moves {
            assert!(
                !moves.contains(&(*k, !*up)),
                "segment {k} moved both ways: {moves:?}"
            );
        }
        let used: u64 = first.iter().map(|s| s.1).sum();
        assert_eq!(p.decide(used, capacity / 2), Decision::Idle, "settles");
    }
}
