//! The part of HdrHistogram (Redis's `deps/hdr_histogram`) that Redis's per-command
//! latency statistics use: recording, `hdr_value_at_percentile` (INFO latencystats)
//! and the logarithmic iterator (LATENCY HISTOGRAM). Ported so that the buckets,
//! and so every number printed, are Redis's.

/// Redis's `LATENCY_HISTOGRAM_MIN_VALUE` / `MAX_VALUE` (ns) and precision.
const LOWEST: i64 = 1;
const HIGHEST: i64 = 1_000_000_000;
const SIGNIFICANT_FIGURES: u32 = 2;

/// The bucket layout, computed as `hdr_calculate_bucket_config` does.
struct Layout {
    unit_magnitude: i32,
    sub_bucket_half_count_magnitude: i32,
    sub_bucket_count: i32,
    sub_bucket_half_count: i32,
    sub_bucket_mask: i64,
    counts_len: usize,
}

const fn layout() -> Layout {
    // 2 * 10^sf values need single-unit resolution: 200 -> 8 bits -> 256 sub-buckets.
    let largest_single_unit = 2 * 10i64.pow(SIGNIFICANT_FIGURES);
    let sub_bucket_count_magnitude = 64 - (largest_single_unit - 1).leading_zeros() as i32;
    let sub_bucket_half_count_magnitude = if sub_bucket_count_magnitude > 1 {
        sub_bucket_count_magnitude - 1
    } else {
        0
    };
    let unit_magnitude = 63 - LOWEST.leading_zeros() as i32;
    let sub_bucket_count = 1i32 << (sub_bucket_half_count_magnitude + 1);
    let sub_bucket_half_count = sub_bucket_count / 2;
    let sub_bucket_mask = ((sub_bucket_count as i64) - 1) << unit_magnitude;
    let mut smallest_untrackable = (sub_bucket_count as i64) << unit_magnitude;
    let mut buckets = 1;
    while smallest_untrackable <= HIGHEST {
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    Layout {
        unit_magnitude,
        sub_bucket_half_count_magnitude,
        sub_bucket_count,
        sub_bucket_half_count,
        sub_bucket_mask,
        counts_len: ((buckets + 1) * (sub_bucket_count / 2)) as usize,
    }
}

const L: Layout = layout();

/// A latency histogram in nanoseconds (values are clamped to 1 ns .. 1 s, as Redis's
/// `updateCommandLatencyHistogram` does).
pub(crate) struct Histogram {
    counts: Box<[i64]>,
    pub total_count: i64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; L.counts_len].into_boxed_slice(),
            total_count: 0,
        }
    }
}

fn bucket_index(value: i64) -> i32 {
    let pow2ceiling = 64 - (value | L.sub_bucket_mask).leading_zeros() as i32;
    pow2ceiling - L.unit_magnitude - (L.sub_bucket_half_count_magnitude + 1)
}

fn sub_bucket_index(value: i64, bucket: i32) -> i32 {
    (value >> (bucket + L.unit_magnitude)) as i32
}

fn counts_index(bucket: i32, sub_bucket: i32) -> i32 {
    ((bucket + 1) << L.sub_bucket_half_count_magnitude) + (sub_bucket - L.sub_bucket_half_count)
}

fn value_from_index(bucket: i32, sub_bucket: i32) -> i64 {
    (sub_bucket as i64) << (bucket + L.unit_magnitude)
}

fn value_at_index(index: i32) -> i64 {
    let mut bucket = (index >> L.sub_bucket_half_count_magnitude) - 1;
    let mut sub_bucket = (index & (L.sub_bucket_half_count - 1)) + L.sub_bucket_half_count;
    if bucket < 0 {
        sub_bucket -= L.sub_bucket_half_count;
        bucket = 0;
    }
    value_from_index(bucket, sub_bucket)
}

fn size_of_equivalent_range(bucket: i32, sub_bucket: i32) -> i64 {
    let adjusted = if sub_bucket >= L.sub_bucket_count {
        bucket + 1
    } else {
        bucket
    };
    1i64 << (L.unit_magnitude + adjusted)
}

fn lowest_equivalent(value: i64) -> i64 {
    let b = bucket_index(value);
    value_from_index(b, sub_bucket_index(value, b))
}

fn highest_equivalent(value: i64) -> i64 {
    let b = bucket_index(value);
    let s = sub_bucket_index(value, b);
    value_from_index(b, s) + size_of_equivalent_range(b, s) - 1
}

impl Histogram {
    /// Records one latency (ns), clamped to the tracked range.
    #[inline]
    pub fn record(&mut self, ns: i64) {
        let v = ns.clamp(LOWEST, HIGHEST);
        let b = bucket_index(v);
        let i = counts_index(b, sub_bucket_index(v, b));
        if let Some(c) = self.counts.get_mut(i as usize) {
            *c += 1;
            self.total_count += 1;
        }
    }

    /// `hdr_value_at_percentile`.
    pub fn value_at_percentile(&self, percentile: f64) -> i64 {
        let requested = percentile.min(100.0);
        let at = ((requested / 100.0) * self.total_count as f64 + 0.5) as i64;
        let at = at.max(1);
        let mut seen = 0;
        let mut value = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= at {
                value = value_at_index(i as i32);
                break;
            }
        }
        if percentile == 0.0 {
            lowest_equivalent(value)
        } else {
            highest_equivalent(value)
        }
    }

    /// The counts per bucket of `bounds` (ascending upper bounds in ns, Prometheus's
    /// `le`), written to `out` (one more slot than `bounds`: the overflow), and an
    /// estimate of the sum of the values (ns). A cell of the histogram counts in the
    /// first bucket its highest value fits in, so a value may be placed one bucket
    /// up when a bound falls inside its cell (cells are within 1 % of their values);
    /// the sum takes each cell at its middle. One pass over the cells.
    pub fn bucket_counts(&self, bounds: &[i64], out: &mut [u64]) -> f64 {
        let mut sum = 0.0;
        let mut b = 0;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let low = value_at_index(i as i32);
            let high = highest_equivalent(low);
            while b < bounds.len() && high > bounds[b] {
                b += 1;
            }
            if let Some(slot) = out.get_mut(b) {
                *slot += c as u64;
            }
            sum += c as f64 * (low as f64 + high as f64) / 2.0;
            seen += c;
            if seen >= self.total_count {
                break;
            }
        }
        sum
    }

    /// What `hdr_iter_log_init(iter, h, first, base)` steps through: for each
    /// reporting level, the highest value of the bucket the iteration reached and the
    /// cumulative count up to it.
    pub fn log_steps(&self, first: i64, base: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut index: i32 = -1;
        let mut cumulative = 0i64;
        let mut value = 0i64;
        let mut highest = 0i64;
        let mut level = first;
        let mut level_lowest = lowest_equivalent(first);
        let len = self.counts.len() as i32;
        loop {
            // has_next || next value above the level's upper bound
            let more = cumulative < self.total_count
                || (index < len && value_at_index(index + 1) > level_lowest);
            if !more {
                return out;
            }
            loop {
                if value >= level_lowest {
                    out.push((highest, cumulative));
                    level *= base;
                    level_lowest = lowest_equivalent(level);
                    break;
                }
                // move_next
                index += 1;
                if index >= len {
                    out.push((highest, cumulative));
                    break;
                }
                cumulative += self.counts[index as usize];
                value = value_at_index(index);
                let b = bucket_index(value);
                let s = sub_bucket_index(value, b);
                highest = value_from_index(b, s) + size_of_equivalent_range(b, s) - 1;
            }
            if index >= len {
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_redis_s() {
        // hdr_init(1, 1e9, 2): 256 sub-buckets, 23 buckets.
        assert_eq!(L.sub_bucket_count, 256);
        assert_eq!(L.sub_bucket_half_count_magnitude, 7);
        assert_eq!(L.unit_magnitude, 0);
        assert_eq!(L.counts_len, 24 * 128);
    }

    #[test]
    fn percentiles_name_the_bucket_s_highest_value() {
        let mut h = Histogram::default();
        // Redis: a single SET of 33 us reports p50=p99=p99.9=33.023 us.
        h.record(33_000);
        for p in [50.0, 99.0, 99.9, 100.0] {
            assert_eq!(h.value_at_percentile(p), 33_023);
        }
        assert_eq!(h.value_at_percentile(0.0), 32_768);
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        let p50 = h.value_at_percentile(50.0);
        assert!((499_000..=503_000).contains(&p50), "{p50}");
        // Values are exact below 256 ns, and within 1 % above.
        let mut small = Histogram::default();
        small.record(200);
        assert_eq!(small.value_at_percentile(50.0), 200);
        small.record(-5);
        small.record(i64::MAX);
        assert_eq!(small.total_count, 3);
        assert!(small.value_at_percentile(100.0) >= HIGHEST);
    }

    #[test]
    fn bucket_counts_place_every_value_once() {
        let mut h = Histogram::default();
        for v in [500, 999, 1_000, 1_500, 40_000, 2_000_000_000] {
            h.record(v);
        }
        let bounds = [1_000, 2_000, 50_000];
        let mut out = [0u64; 4];
        let sum = h.bucket_counts(&bounds, &mut out);
        // 1,000 ns sits in a cell that reaches 1,003: one bucket up. The value
        // beyond 1 s was clamped to 1 s and overflows.
        assert_eq!(out, [2, 2, 1, 1]);
        assert_eq!(out.iter().sum::<u64>() as i64, h.total_count);
        let exact = (500 + 999 + 1_000 + 1_500 + 40_000 + 1_000_000_000) as f64;
        assert!((sum - exact).abs() / exact < 0.01, "{sum} vs {exact}");
        let mut none = [0u64; 4];
        assert_eq!(Histogram::default().bucket_counts(&bounds, &mut none), 0.0);
        assert_eq!(none, [0; 4]);
    }

    #[test]
    fn log_steps_are_cumulative_and_start_at_1024_ns() {
        let mut h = Histogram::default();
        for _ in 0..3 {
            h.record(33_000);
        }
        h.record(1_500);
        let steps = h.log_steps(1024, 2);
        // The reported buckets only grow, and the last one holds every value.
        assert!(steps
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(steps.last().map(|s| s.1), Some(4));
        assert_eq!(steps[0].0 / 1000, 1);
        let with_counts: Vec<(i64, i64)> = steps
            .iter()
            .scan(0, |prev, &(v, c)| {
                let r = (c > *prev).then_some((v / 1000, c));
                *prev = c;
                Some(r)
            })
            .flatten()
            .collect();
        // Redis's LATENCY HISTOGRAM for the same values: {2: 1, 33: 4}.
        assert_eq!(with_counts, vec![(2, 1), (33, 4)]);
        assert!(Histogram::default().log_steps(1024, 2).is_empty());
    }
}
