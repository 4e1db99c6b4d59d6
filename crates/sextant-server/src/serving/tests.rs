use super::*;

#[test]
fn sticky_buckets_are_stable_and_spread() {
    assert_eq!(
        sticky_bucket("fraud", "alice"),
        sticky_bucket("fraud", "alice")
    );
    let mut counts = [0u32; 2];
    for i in 0..10_000 {
        counts[(sticky_bucket("fraud", &format!("caller-{i}")) < 30) as usize] += 1;
    }
    // 30% of callers land below 30, within a few standard deviations (±0.5%·√n).
    assert!((2_850..=3_150).contains(&counts[1]), "{counts:?}");
    // Another deployment shuffles callers independently.
    let same = (0..1000).filter(|i| {
        let key = format!("caller-{i}");
        (sticky_bucket("fraud", &key) < 50) == (sticky_bucket("churn", &key) < 50)
    });
    assert!((400..=600).contains(&same.count()));
}

#[test]
fn prediction_ids_are_version_4_uuids() {
    let a = prediction_id();
    let b = prediction_id();
    assert_ne!(a, b);
    assert_eq!(a.len(), 36);
    let parts: Vec<&str> = a.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('4'), "{a}");
    assert!(
        matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')),
        "{a}"
    );
}
