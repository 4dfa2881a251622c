//! Redis's `pqsort.c`: a partial quicksort (Bentley & McIlroy's qsort from NetBSD)
//! that sorts only the part of the array holding positions `lrange..=rrange`.
//! GEOSEARCH with COUNT below the number of matches orders its results with it, so
//! ties (equal distances) come out in Redis's order only with the same algorithm.

use std::cmp::Ordering;

fn med3<T, F: Fn(&T, &T) -> Ordering>(v: &[T], a: usize, b: usize, c: usize, cmp: &F) -> usize {
    if cmp(&v[a], &v[b]) == Ordering::Less {
        if cmp(&v[b], &v[c]) == Ordering::Less {
            b
        } else if cmp(&v[a], &v[c]) == Ordering::Less {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) == Ordering::Greater {
        b
    } else if cmp(&v[a], &v[c]) == Ordering::Less {
        a
    } else {
        c
    }
}

fn vecswap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// Sorts `v` so that positions `lrange..=rrange` hold what a full sort would put
/// there (in Redis's order for ties).
pub fn pqsort<T, F: Fn(&T, &T) -> Ordering>(v: &mut [T], cmp: &F, lrange: usize, rrange: usize) {
    let n = v.len();
    sort(v, 0, n, cmp, lrange, rrange);
}

/// Whether the sub-array `[s, s + cnt)` intersects `lrange..=rrange` (the pointer
/// tests of `_pqsort`).
fn overlaps(s: usize, cnt: usize, lrange: usize, rrange: usize) -> bool {
    !(rrange < s || lrange >= s + cnt)
}

fn sort<T, F: Fn(&T, &T) -> Ordering>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    cmp: &F,
    lrange: usize,
    rrange: usize,
) {
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(&v[pl - 1], &v[pl]) == Ordering::Greater {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c == Ordering::Greater {
                    break;
                }
                if c == Ordering::Equal {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[a]);
                if c == Ordering::Less {
                    break;
                }
                if c == Ordering::Equal {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        vecswap(v, pb, pn - r, r);
        let cnt = pb - pa;
        if cnt > 1 && overlaps(a, cnt, lrange, rrange) {
            sort(v, a, cnt, cmp, lrange, rrange);
        }
        let cnt = pd - pc;
        if cnt > 1 {
            a = pn - cnt;
            n = cnt;
            if overlaps(a, cnt, lrange, rrange) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_requested_prefix_is_sorted() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _ in 0..300 {
            let n = rng.random_range(1..200);
            let v: Vec<(u32, usize)> = (0..n).map(|i| (rng.random_range(0..20), i)).collect();
            let k = rng.random_range(1..=n);
            let mut p = v.clone();
            pqsort(
                &mut p,
                &|a: &(u32, usize), b: &(u32, usize)| a.0.cmp(&b.0),
                0,
                k - 1,
            );
            let mut full: Vec<u32> = v.iter().map(|x| x.0).collect();
            full.sort();
            let got: Vec<u32> = p[..k].iter().map(|x| x.0).collect();
            assert_eq!(got, full[..k]);
            let mut all: Vec<usize> = p.iter().map(|x| x.1).collect();
            all.sort();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }
}
