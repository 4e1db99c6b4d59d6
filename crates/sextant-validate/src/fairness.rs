//! Fairness as fairlearn's `MetricFrame` defines it: a metric per group of
//! the sensitive features (their intersections when several are named),
//! `difference()` = max − min over groups and `ratio()` = min / max
//! (method `between_groups`), or against the overall value (`to_overall`:
//! the largest |group − overall|, the smallest min(g/o, o/g)); and the
//! named disparity measures of `fairlearn.metrics`:
//! demographic parity (selection rate), equalized odds (the worse of the
//! true and false positive rates' disparities) and equal opportunity
//! (true positive rate).

use crate::metrics::Metric;

#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    Difference,
    Ratio,
    DifferenceToOverall,
    RatioToOverall,
    GroupMin,
    GroupMax,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// An aggregate of one of the test's metrics (`accuracy.ratio`).
    Of(Metric, Aggregate),
    DemographicParity {
        ratio: bool,
    },
    EqualizedOdds {
        ratio: bool,
    },
    EqualOpportunity {
        ratio: bool,
    },
}

impl Measure {
    pub fn parse(key: &str, metrics: &[Metric]) -> Result<Measure, String> {
        let named = match key {
            "demographic_parity_difference" => Some(Measure::DemographicParity { ratio: false }),
            "demographic_parity_ratio" => Some(Measure::DemographicParity { ratio: true }),
            "equalized_odds_difference" => Some(Measure::EqualizedOdds { ratio: false }),
            "equalized_odds_ratio" => Some(Measure::EqualizedOdds { ratio: true }),
            "equal_opportunity_difference" => Some(Measure::EqualOpportunity { ratio: false }),
            "equal_opportunity_ratio" => Some(Measure::EqualOpportunity { ratio: true }),
            _ => None,
        };
        if let Some(measure) = named {
            return Ok(measure);
        }
        let Some((metric, aggregate)) = key.rsplit_once('.') else {
            return Err(format!(
                "unknown measure '{key}': expected demographic_parity_difference/_ratio, \
                 equalized_odds_difference/_ratio, equal_opportunity_difference/_ratio, or \
                 METRIC.difference|ratio|difference_to_overall|ratio_to_overall|group_min|group_max"
            ));
        };
        let metric = Metric::parse(&serde_json::Value::String(metric.to_string()))?;
        if !metrics.contains(&metric) {
            return Err(format!(
                "'{key}' aggregates {}, which is not among the test's `metrics`",
                metric.name()
            ));
        }
        let aggregate = match aggregate {
            "difference" => Aggregate::Difference,
            "ratio" => Aggregate::Ratio,
            "difference_to_overall" => Aggregate::DifferenceToOverall,
            "ratio_to_overall" => Aggregate::RatioToOverall,
            "group_min" => Aggregate::GroupMin,
            "group_max" => Aggregate::GroupMax,
            other => return Err(format!("unknown aggregate '{other}' in '{key}'")),
        };
        Ok(Measure::Of(metric, aggregate))
    }

    /// The measure from per-group values of what it reads. `values(metric)`
    /// gives (overall, per group).
    pub fn value(
        &self,
        values: &dyn Fn(&Metric) -> (Option<f64>, Vec<Option<f64>>),
    ) -> Option<f64> {
        let between = |metric: &Metric, ratio: bool| {
            let (_, groups) = values(metric);
            aggregate(
                None,
                &groups,
                if ratio {
                    &Aggregate::Ratio
                } else {
                    &Aggregate::Difference
                },
            )
        };
        match self {
            Measure::Of(metric, how) => {
                let (overall, groups) = values(metric);
                aggregate(overall, &groups, how)
            }
            Measure::DemographicParity { ratio } => between(&Metric::SelectionRate, *ratio),
            Measure::EqualOpportunity { ratio } => between(&Metric::Recall, *ratio),
            Measure::EqualizedOdds { ratio } => {
                let tpr = between(&Metric::Recall, *ratio)?;
                let fpr = between(&Metric::FalsePositiveRate, *ratio)?;
                // fairlearn's agg="worst_case": the larger difference, the
                // smaller ratio.
                Some(if *ratio { tpr.min(fpr) } else { tpr.max(fpr) })
            }
        }
    }

    /// The metrics whose per-group values the measure reads.
    pub fn reads(&self) -> Vec<Metric> {
        match self {
            Measure::Of(metric, _) => vec![metric.clone()],
            Measure::DemographicParity { .. } => vec![Metric::SelectionRate],
            Measure::EqualOpportunity { .. } => vec![Metric::Recall],
            Measure::EqualizedOdds { .. } => vec![Metric::Recall, Metric::FalsePositiveRate],
        }
    }
}

fn aggregate(overall: Option<f64>, groups: &[Option<f64>], how: &Aggregate) -> Option<f64> {
    let values: Vec<f64> = groups.iter().flatten().copied().collect();
    if values.is_empty() {
        return None;
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ratio = |a: f64, b: f64| {
        if b == 0.0 {
            if a == 0.0 {
                1.0
            } else {
                0.0
            }
        } else {
            a / b
        }
    };
    Some(match how {
        Aggregate::Difference => max - min,
        Aggregate::Ratio => ratio(min, max),
        Aggregate::GroupMin => min,
        Aggregate::GroupMax => max,
        Aggregate::DifferenceToOverall => {
            let o = overall?;
            values.iter().map(|v| (v - o).abs()).fold(0.0, f64::max)
        }
        Aggregate::RatioToOverall => {
            let o = overall?;
            values
                .iter()
                .map(|&v| ratio(v, o).min(ratio(o, v)))
                .fold(f64::INFINITY, f64::min)
        }
    })
}
