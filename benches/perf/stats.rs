//! Medians and spreads of repeated measurements, and the numbers of a realistic request.

use std::time::Duration;

/// Median, minimum, maximum and 10th and 90th percentiles of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p10: f64,
    pub p90: f64,
    pub runs: usize,
}

/// The `q` quantile of sorted samples, interpolated between the two nearest ranks (the
/// median of an even count is the mean of the middle two).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

pub fn summarize(samples: &[f64]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = sorted.len();
    Summary {
        median: quantile(&sorted, 0.5),
        min: sorted[0],
        max: sorted[n - 1],
        p10: quantile(&sorted, 0.1),
        p90: quantile(&sorted, 0.9),
        runs: n,
    }
}

impl Summary {
    /// `12.3 (11.9-14.0, n=15)`, with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}-{:.d$}, n={})",
            self.median,
            self.min,
            self.max,
            self.runs,
            d = digits
        )
    }

    /// `12.3 (11.9-14.0, p10-p90 12.0-13.1, n=40)`, with `digits` decimals.
    pub fn show_spread(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}-{:.d$}, p10-p90 {:.d$}-{:.d$}, n={})",
            self.median,
            self.min,
            self.max,
            self.p10,
            self.p90,
            self.runs,
            d = digits
        )
    }
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A small deterministic generator (xorshift64*), so every run uses the same numbers.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// The five other countries of the mix, with the shape of a mobile number of each
/// (country code, then a fixed prefix, then random digits).
pub const OTHER_COUNTRIES: [(&str, &str, usize); 5] = [
    ("CA", "1416", 7),  // Toronto: +1 like the US, so the NANPA region search runs
    ("GB", "447", 9),   // UK mobile
    ("IN", "919", 9),   // India mobile
    ("KE", "2547", 8),  // Kenya mobile
    ("NG", "23480", 8), // Nigeria mobile
];

/// US area codes the numbers are drawn from.
const US_AREAS: [&str; 16] = [
    "617", "212", "415", "312", "202", "646", "718", "305", "404", "713", "206", "303", "512",
    "614", "919", "702",
];

/// A US number as clients write them: mostly E.164, some with spaces, dashes or no plus.
pub fn us_candidate(rng: &mut Rng) -> String {
    let area = US_AREAS[rng.below(US_AREAS.len() as u64) as usize];
    let exchange = format!("{}{}", 2 + rng.below(8), rng.digits(2));
    let line = rng.digits(4);
    match rng.below(10) {
        0 => format!("+1 ({area}) {exchange}-{line}"),
        1 => format!("1{area}{exchange}{line}"),
        _ => format!("+1{area}{exchange}{line}"),
    }
}

pub fn other_candidate(rng: &mut Rng, country: usize) -> String {
    let (_, prefix, rest) = OTHER_COUNTRIES[country];
    format!("+{prefix}{}", rng.digits(rest))
}

/// `n` distinct valid numbers: nine in ten from the US, one in ten from the five other
/// countries in turn. `valid` decides validity (the function's own parser).
pub fn realistic_mix(n: usize, seed: u64, valid: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    let mut others = 0;
    while out.len() < n {
        let i = out.len();
        let candidate = if i % 10 == 9 {
            other_candidate(&mut rng, others % OTHER_COUNTRIES.len())
        } else {
            us_candidate(&mut rng)
        };
        if let Some(e164) = valid(&candidate)
            && seen.insert(e164)
        {
            if i % 10 == 9 {
                others += 1;
            }
            out.push(candidate);
        }
    }
    out
}

/// `n` distinct valid numbers of one of the other countries.
pub fn numbers_of(
    country: usize,
    n: usize,
    seed: u64,
    valid: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while out.len() < n {
        let candidate = other_candidate(&mut rng, country);
        if let Some(e164) = valid(&candidate)
            && seen.insert(e164)
        {
            out.push(candidate);
        }
    }
    out
}

/// `n` distinct valid US numbers.
pub fn us_numbers(n: usize, seed: u64, valid: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while out.len() < n {
        let candidate = us_candidate(&mut rng);
        if let Some(e164) = valid(&candidate)
            && seen.insert(e164)
        {
            out.push(candidate);
        }
    }
    out
}
