//! Binary-classification metrics. (Owned by the renewal work.)
//!
//! `p` is the predicted probability of the positive event, `y` the outcome.
//! Every function takes plain slices so baselines and models share them.

use serde::Serialize;
use serde_json::json;

/// Probabilities are clipped to this before taking logs.
const EPS: f64 = 1e-15;

/// Area under the ROC curve: the probability that a random positive scores
/// above a random negative, ties counting one half (Mann–Whitney). `None`
/// when one class is missing.
pub fn roc_auc(p: &[f64], y: &[bool]) -> Option<f64> {
    let pos = y.iter().filter(|&&v| v).count();
    let neg = y.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Rank sum of the positives with mid-ranks for ties.
    let order = sorted_order(p);
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid_rank * order[i..=j].iter().filter(|&&k| y[k]).count() as f64;
        i = j + 1;
    }
    let (pos, neg) = (pos as f64, neg as f64);
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Area under the precision–recall curve as average precision: the mean of
/// the precision at each positive, walking down the scores (tied scores
/// enter together). `None` without positives.
pub fn pr_auc(p: &[f64], y: &[bool]) -> Option<f64> {
    let pos = y.iter().filter(|&&v| v).count();
    if pos == 0 {
        return None;
    }
    let mut order = sorted_order(p);
    order.reverse();
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let new_tp = order[i..=j].iter().filter(|&&k| y[k]).count();
        tp += new_tp;
        seen += j - i + 1;
        ap += new_tp as f64 * tp as f64 / seen as f64;
        i = j + 1;
    }
    Some(ap / pos as f64)
}

/// Mean negative log-likelihood (natural log).
pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    let s: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    s / p.len().max(1) as f64
}

/// Mean squared error of the probabilities.
pub fn brier(p: &[f64], y: &[bool]) -> f64 {
    let s: f64 = p.iter().zip(y).map(|(&p, &y)| (p - f64::from(u8::from(y))).powi(2)).sum();
    s / p.len().max(1) as f64
}

/// 1 − Brier / Brier of always predicting `base_rate`.
pub fn brier_skill(p: &[f64], y: &[bool], base_rate: f64) -> f64 {
    let reference = brier(&vec![base_rate; y.len()], y);
    if reference == 0.0 { 0.0 } else { 1.0 - brier(p, y) / reference }
}

/// One bin of a reliability table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: Option<f64>,
    pub observed_rate: Option<f64>,
}

/// Reliability table of `bins` equal-width probability bins ([0, 0.1),
/// [0.1, 0.2), …, [0.9, 1.0]) and the expected calibration error: the
/// count-weighted mean |observed rate − mean prediction| over the bins.
pub fn reliability(p: &[f64], y: &[bool], bins: usize) -> (Vec<Bin>, f64) {
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (&p, &y) in p.iter().zip(y) {
        let b = ((p * bins as f64).floor().max(0.0) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += f64::from(u8::from(y));
        count[b] += 1;
    }
    let n = p.len().max(1) as f64;
    let mut ece = 0.0;
    let table = (0..bins)
        .map(|b| {
            let c = count[b] as f64;
            let (mp, or) = if count[b] > 0 { (Some(sum_p[b] / c), Some(sum_y[b] / c)) } else { (None, None) };
            if let (Some(mp), Some(or)) = (mp, or) {
                ece += c / n * (or - mp).abs();
            }
            Bin {
                lower: b as f64 / bins as f64,
                upper: (b + 1) as f64 / bins as f64,
                count: count[b],
                mean_predicted: mp,
                observed_rate: or,
            }
        })
        .collect();
    (table, ece)
}

/// Lift of the lowest-probability decile for the negative event: the
/// non-renewal rate among the 10 % lowest scores over the overall
/// non-renewal rate. Ties at the cut are broken by row order (stable sort),
/// so a constant score gives the lift of the first rows. `None` without
/// negatives.
pub fn low_decile_lift(p: &[f64], y: &[bool]) -> Option<f64> {
    let neg = y.iter().filter(|&&v| !v).count();
    if neg == 0 || p.is_empty() {
        return None;
    }
    let order = sorted_order(p);
    let k = (p.len() as f64 / 10.0).ceil() as usize;
    let neg_low = order[..k].iter().filter(|&&i| !y[i]).count();
    Some((neg_low as f64 / k as f64) / (neg as f64 / p.len() as f64))
}

/// Indices of `p` in increasing order (stable).
fn sorted_order(p: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    order
}

/// All metrics of one set of predictions as JSON (`base_rate` is the
/// training renewal rate, the reference of the Brier skill).
pub fn summary(p: &[f64], y: &[bool], base_rate: f64) -> serde_json::Value {
    let (table, ece) = reliability(p, y, 10);
    json!({
        "roc_auc": roc_auc(p, y),
        "pr_auc": pr_auc(p, y),
        "log_loss": log_loss(p, y),
        "brier": brier(p, y),
        "brier_skill": brier_skill(p, y, base_rate),
        "ece": ece,
        "low_decile_lift": low_decile_lift(p, y),
        "mean_predicted": p.iter().sum::<f64>() / p.len().max(1) as f64,
        "reliability": table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_counts_ordered_pairs_with_ties_as_halves() {
        // Positives 0.9, 0.4, 0.35(tie with a negative); negatives 0.8, 0.35, 0.1.
        // Pairs (pos > neg): 0.9 beats 3; 0.4 beats 0.35, 0.1 = 2; 0.35 ties 0.35 (½) and beats 0.1 = 1.5.
        let p = [0.9, 0.8, 0.4, 0.35, 0.35, 0.1];
        let y = [true, false, true, true, false, false];
        assert!(close(roc_auc(&p, &y).unwrap(), 6.5 / 9.0));
        assert_eq!(roc_auc(&p, &[true; 6]), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // Descending: 0.9 T (1/1), 0.8 F, 0.4 T (2/3), 0.1 F. AP = (1 + 2/3) / 2.
        let p = [0.1, 0.4, 0.9, 0.8];
        let y = [false, true, true, false];
        assert!(close(pr_auc(&p, &y).unwrap(), (1.0 + 2.0 / 3.0) / 2.0));
    }

    #[test]
    fn log_loss_and_brier_by_hand() {
        let p = [0.8, 0.3];
        let y = [true, false];
        assert!(close(log_loss(&p, &y), -(0.8f64.ln() + 0.7f64.ln()) / 2.0));
        assert!(close(brier(&p, &y), (0.04 + 0.09) / 2.0));
        // Base rate 0.5: reference Brier 0.25; skill = 1 − 0.065/0.25.
        assert!(close(brier_skill(&p, &y, 0.5), 1.0 - 0.065 / 0.25));
    }

    #[test]
    fn ece_weights_bin_gaps_by_count() {
        // Bin 1 ([0.1,0.2)): 0.15, 0.15 → mean 0.15, observed 0.5 → gap 0.35, weight 2/4.
        // Bin 9 ([0.9,1.0]): 0.95, 1.0 → mean 0.975, observed 1.0 → gap 0.025, weight 2/4.
        let p = [0.15, 0.15, 0.95, 1.0];
        let y = [true, false, true, true];
        let (table, ece) = reliability(&p, &y, 10);
        assert!(close(ece, 0.5 * 0.35 + 0.5 * 0.025));
        assert_eq!(table[1].count, 2);
        assert_eq!(table[9].count, 2);
        assert_eq!(table[0].count, 0);
        assert_eq!(table[0].observed_rate, None);
        assert!(close(table[9].mean_predicted.unwrap(), 0.975));
    }

    #[test]
    fn lift_of_lowest_decile() {
        // 20 rows, 4 non-renewals overall (20 %); lowest 2 scores are both non-renewals: lift = 1.0 / 0.2 = 5.
        let p: Vec<f64> = (0..20).map(|i| i as f64 / 20.0).collect();
        let mut y = vec![true; 20];
        for i in [0, 1, 10, 15] {
            y[i] = false;
        }
        assert!(close(low_decile_lift(&p, &y).unwrap(), 5.0));
    }
}
