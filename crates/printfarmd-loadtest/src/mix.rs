//! `--mix` and `--print-seconds`: how many printers of each kind the simulated farm has,
//! and how long its prints are.

use anyhow::{Context, bail};

pub struct Mix {
    pub x1: usize,
    pub p1: usize,
    pub prusa: usize,
    pub octo: usize,
    pub moon: usize,
}

const MIX_FORMAT: &str =
    "expected X1:P1:PRUSA or X1:P1:PRUSA:OCTOPRINT:MOONRAKER, like 2:2:1 or 1:1:1:1:1";

/// Printers of each kind for `n` printers shared as `mix` says: each share rounded, the
/// P1-style Bambu printers take what rounding leaves.
pub fn parse_mix(mix: &str, n: usize) -> anyhow::Result<Mix> {
    let parts: Vec<f64> = mix
        .split(':')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--mix {mix:?}: {MIX_FORMAT}"))?;
    let shares: [f64; 5] = match parts[..] {
        [a, b, c] => [a, b, c, 0.0, 0.0],
        [a, b, c, d, e] => [a, b, c, d, e],
        _ => bail!("--mix {mix:?}: {MIX_FORMAT}"),
    };
    let total: f64 = shares.iter().sum();
    if !total.is_finite() || total <= 0.0 || shares.iter().any(|s| *s < 0.0) {
        bail!("--mix {mix:?}: shares must be non-negative and not all zero");
    }
    let mut left = n;
    let mut take = |share: f64| {
        let k = ((n as f64 * share / total).round() as usize).min(left);
        left -= k;
        k
    };
    let (x1, prusa, octo, moon) = (
        take(shares[0]),
        take(shares[2]),
        take(shares[3]),
        take(shares[4]),
    );
    Ok(Mix {
        x1,
        p1: left,
        prusa,
        octo,
        moon,
    })
}

pub fn parse_range(s: &str) -> anyhow::Result<(u64, u64)> {
    let (a, b) = s
        .split_once("..")
        .with_context(|| format!("--print-seconds {s:?}: expected MIN..MAX"))?;
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    if a == 0 || b < a {
        bail!("--print-seconds {s:?}: expected 0 < MIN <= MAX");
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(m: &Mix) -> [usize; 5] {
        [m.x1, m.p1, m.prusa, m.octo, m.moon]
    }

    #[test]
    fn a_mix_shares_every_printer_out() {
        assert_eq!(kinds(&parse_mix("2:2:1", 100).unwrap()), [40, 40, 20, 0, 0]);
        assert_eq!(
            kinds(&parse_mix("1:1:1:1:1", 2000).unwrap()),
            [400, 400, 400, 400, 400]
        );
        assert_eq!(kinds(&parse_mix("0:0:0:1:1", 3).unwrap()), [0, 0, 0, 2, 1]);
        for (mix, n) in [("1:1:1:1:1", 7), ("3:0:1:1:2", 11), ("0:0:0:0:1", 5)] {
            assert_eq!(kinds(&parse_mix(mix, n).unwrap()).iter().sum::<usize>(), n);
        }
        for bad in ["1:1", "1:1:1:1", "a:b:c", "0:0:0", "-1:1:1", "1:1:1:1:1:1"] {
            assert!(parse_mix(bad, 10).is_err(), "{bad}");
        }
    }
}
