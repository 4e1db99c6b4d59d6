//! Deployments: which registered model versions answer a deployment's
//! traffic, in what shares, and how a rollout moves on.
//!
//! A [`DeploymentSpec`] lists [`Arm`]s. Live arms split the traffic by
//! weight; a shadow arm gets a copy of it whose answers are logged and never
//! returned; a standby arm is kept loaded, without traffic, for an instant
//! rollback (blue-green). The [`Policy`] says what the arms mean and how
//! the rollout proceeds. Every change makes a new revision; the functions
//! here compute the next spec from the current one and never do IO, so the
//! rules of canary ramps, promotions and rollbacks are tested in isolation.

use std::fmt;

string_enum!(
    /// What a deployment that follows an alias does when the alias moves to
    /// another version: the rollout it starts. (A deployment that should
    /// not move is made from a version, `NAME/VERSION`, not an alias.)
    AliasRollout { Replace => "replace", BlueGreen => "blue-green", Canary => "canary" }
);

string_enum!(
    /// What an arm does with the traffic.
    ArmRole { Live => "live", Shadow => "shadow", Standby => "standby" }
);

string_enum!(
    /// The rollout pattern a deployment is in.
    PolicyKind { Single => "single", Canary => "canary", AbTest => "ab", Shadow => "shadow" }
);

/// A registered model version; `alias` is how the user named it, if by
/// alias (the version is resolved when the deployment changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub version: i64,
    pub alias: Option<String>,
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.version)?;
        if let Some(alias) = &self.alias {
            write!(f, " (@{alias})")?;
        }
        Ok(())
    }
}

/// One model version in a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// `primary`, `canary`, `a`, `b`, `shadow`, `standby`, or a user's name.
    pub name: String,
    pub model: ModelRef,
    /// Share of live traffic, in percent of the live arms' total. Zero for
    /// shadow and standby arms.
    pub weight: u32,
    pub role: ArmRole,
}

/// A canary rollout: the candidate's share climbs through `steps`, one step
/// per `interval_ms` of healthy baking, and the rollout reverts on its own
/// when the candidate breaches a bound.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryPolicy {
    /// Weights the candidate goes through, ascending; the last is usually
    /// 100, and reaching it promotes the candidate.
    pub steps: Vec<u32>,
    /// Index of the current step in `steps`.
    pub step: usize,
    /// When the current step began (ms since the epoch): its baking period.
    pub step_started_ms: i64,
    pub interval_ms: i64,
    /// Largest share of failed requests (5xx) the candidate may have.
    pub max_error_rate: f64,
    /// Largest 99th-percentile latency the candidate may have, in ms.
    pub max_p99_ms: Option<f64>,
    /// Requests the candidate must have answered in a step before its
    /// health is judged (and before the ramp moves on).
    pub min_requests: u64,
}

impl CanaryPolicy {
    /// The canary `sextant deployments canary` starts without options:
    /// 5, 25, 50 then 100 percent, five minutes of healthy baking per step,
    /// at most 5% failed requests once 100 requests were judged.
    pub fn standard(now_ms: i64) -> CanaryPolicy {
        CanaryPolicy {
            steps: vec![5, 25, 50, 100],
            step: 0,
            step_started_ms: now_ms,
            interval_ms: 300_000,
            max_error_rate: 0.05,
            max_p99_ms: None,
            min_requests: 100,
        }
    }
}

/// An A/B test: arms split by weight, the same caller always reaching the
/// same arm.
#[derive(Debug, Clone, PartialEq)]
pub struct AbPolicy {
    /// Request header whose value keys the stickiness; without it, the
    /// caller's identity (token or user) and then its address.
    pub sticky_header: Option<String>,
}

/// Shadowing: the shadow arm sees `percent` of live requests.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowPolicy {
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    Single,
    Canary(CanaryPolicy),
    AbTest(AbPolicy),
    Shadow(ShadowPolicy),
}

impl Policy {
    pub fn kind(&self) -> PolicyKind {
        match self {
            Policy::Single => PolicyKind::Single,
            Policy::Canary(_) => PolicyKind::Canary,
            Policy::AbTest(_) => PolicyKind::AbTest,
            Policy::Shadow(_) => PolicyKind::Shadow,
        }
    }
}

/// Settings of a deployment that are not about routing.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSettings {
    /// Write every prediction to the prediction log.
    pub log_predictions: bool,
    /// Feed every prediction to the live monitor (drift, outlier verdicts).
    pub monitor: bool,
    /// Python worker processes per Python-served arm.
    pub python_workers: u32,
    /// Keep the arm being replaced loaded, as a standby, for an instant
    /// rollback (blue-green).
    pub keep_standby: bool,
    /// Answer 429 to callers the abuse monitor flags (rate spike,
    /// near duplicates, extraction, boundary probing) for one abuse window.
    pub throttle_abusive_callers: bool,
    /// What happens when the alias the deployment follows moves.
    pub on_alias_move: AliasRollout,
}

impl DeploymentSettings {
    pub fn new() -> DeploymentSettings {
        DeploymentSettings {
            log_predictions: true,
            monitor: true,
            python_workers: 1,
            keep_standby: false,
            throttle_abusive_callers: false,
            on_alias_move: AliasRollout::Replace,
        }
    }
}

/// What a deployment serves and how.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    pub arms: Vec<Arm>,
    pub policy: Policy,
    pub settings: DeploymentSettings,
}

/// A deployment as stored: its spec at the latest revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub name: String,
    pub revision: i64,
    pub spec: DeploymentSpec,
    pub description: String,
    pub created_by: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
}

/// One entry of a deployment's history.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRevision {
    pub revision: i64,
    pub spec: DeploymentSpec,
    /// `create`, `update`, `canary`, `canary_step`, `ab`, `shadow`,
    /// `promote`, `rollback`, `auto_rollback`, `settings`.
    pub action: String,
    pub reason: String,
    pub actor: String,
    pub time: i64,
}

/// A change the caller asked for that the current spec does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentConflict(pub String);

impl fmt::Display for DeploymentConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type Change = Result<DeploymentSpec, DeploymentConflict>;

fn conflict<T>(message: impl Into<String>) -> Result<T, DeploymentConflict> {
    Err(DeploymentConflict(message.into()))
}

/// Deployment names appear in URLs (`/v2/models/{name}/infer`) and metric
/// labels: letters, digits, `-`, `_` and `.`, starting with a letter or
/// digit, at most 63 characters (a DNS label, so images and Kubernetes
/// objects can carry it).
pub fn validate_deployment_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid deployment name '{name}': use 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    }
}

impl DeploymentSpec {
    /// One live arm with all the traffic.
    pub fn single(model: ModelRef, settings: DeploymentSettings) -> DeploymentSpec {
        DeploymentSpec {
            arms: vec![live("primary", model, 100)],
            policy: Policy::Single,
            settings,
        }
    }

    pub fn live_arms(&self) -> impl Iterator<Item = &Arm> {
        self.arms.iter().filter(|a| a.role == ArmRole::Live)
    }

    pub fn arm(&self, name: &str) -> Option<&Arm> {
        self.arms.iter().find(|a| a.name == name)
    }

    /// The arm that serves when no experiment runs.
    pub fn primary(&self) -> &Arm {
        self.arm("primary")
            .or_else(|| self.live_arms().next())
            .unwrap_or(&self.arms[0])
    }

    /// The alias the deployment follows: the one its primary was named by
    /// (`NAME@ALIAS` when it was created or updated). The registry's alias
    /// and the deployment move together: moving the alias starts the
    /// deployment's `on_alias_move` rollout ([`DeploymentSpec::follow`]),
    /// and a change of the primary moves the alias.
    pub fn followed_alias(&self) -> Option<&str> {
        self.primary().model.alias.as_deref()
    }

    /// The next spec when the followed alias moved to `version`, per
    /// `on_alias_move`; `None` when the deployment follows no alias,
    /// already serves that version, or is in the middle of an experiment
    /// (which decides on its own).
    pub fn follow(&self, version: i64, now_ms: i64) -> Option<DeploymentSpec> {
        let alias = self.followed_alias()?;
        let primary = &self.primary().model;
        if primary.version == version || self.policy != Policy::Single {
            return None;
        }
        let model = ModelRef {
            name: primary.name.clone(),
            version,
            alias: Some(alias.to_owned()),
        };
        match self.settings.on_alias_move {
            AliasRollout::Replace => Some(self.replace(model)),
            AliasRollout::BlueGreen => {
                let mut with_standby = self.clone();
                with_standby.settings.keep_standby = true;
                let mut next = with_standby.replace(model);
                next.settings.keep_standby = self.settings.keep_standby;
                Some(next)
            }
            AliasRollout::Canary => {
                // The candidate does not follow the alias until promoted
                // (the primary does; promotion hands the alias over).
                let candidate = ModelRef {
                    alias: None,
                    ..model
                };
                self.start_canary(candidate, CanaryPolicy::standard(now_ms))
                    .ok()
            }
        }
    }

    /// `model`, following the primary's alias when it is another version of
    /// the same model named without an alias: promoting, replacing or
    /// rolling back a deployment that follows `@champion` keeps it
    /// following, and the alias moves with it.
    fn keep_following(&self, mut model: ModelRef) -> ModelRef {
        let primary = &self.primary().model;
        if model.alias.is_none() && model.name == primary.name {
            model.alias = primary.alias.clone();
        }
        model
    }

    fn standby(&self) -> Option<&Arm> {
        self.arms.iter().find(|a| a.role == ArmRole::Standby)
    }

    /// Checks the invariants every stored spec keeps.
    pub fn validate(&self) -> Result<(), DeploymentConflict> {
        let live: Vec<&Arm> = self.live_arms().collect();
        if live.is_empty() {
            return conflict("a deployment needs at least one live arm");
        }
        if live.iter().map(|a| a.weight).sum::<u32>() != 100 {
            return conflict("the weights of the live arms must add up to 100");
        }
        for (i, arm) in self.arms.iter().enumerate() {
            if self.arms[..i].iter().any(|other| other.name == arm.name) {
                return conflict(format!("two arms are named '{}'", arm.name));
            }
            if arm.role != ArmRole::Live && arm.weight != 0 {
                return conflict(format!(
                    "the {} arm '{}' cannot have a weight",
                    arm.role, arm.name
                ));
            }
        }
        if let Policy::Shadow(shadow) = &self.policy {
            if shadow.percent == 0 || shadow.percent > 100 {
                return conflict("a shadow sees between 1 and 100 percent of requests");
            }
        }
        if let Policy::Canary(canary) = &self.policy {
            if canary.steps.is_empty() || canary.step >= canary.steps.len() {
                return conflict("a canary needs at least one step");
            }
        }
        Ok(())
    }

    /// Replaces the primary arm's model (ends any experiment). With
    /// `keep_standby`, the replaced version stays loaded as the standby.
    pub fn replace(&self, model: ModelRef) -> DeploymentSpec {
        let model = self.keep_following(model);
        let previous = self.primary().model.clone();
        let mut arms = vec![live("primary", model, 100)];
        if self.settings.keep_standby && previous != arms[0].model {
            arms.push(standby(previous));
        }
        DeploymentSpec {
            arms,
            policy: Policy::Single,
            settings: self.settings.clone(),
        }
    }

    /// Starts a canary of `model` at the first weight of `policy.steps`.
    pub fn start_canary(&self, model: ModelRef, policy: CanaryPolicy) -> Change {
        self.expect_single("a canary")?;
        if policy.steps.is_empty() || policy.steps.iter().any(|&w| w == 0 || w > 100) {
            return conflict("canary steps are weights between 1 and 100");
        }
        if policy.steps.windows(2).any(|w| w[0] >= w[1]) {
            return conflict("canary steps must increase");
        }
        let weight = policy.steps[0];
        let spec = self.with_candidate(
            "canary",
            model,
            weight,
            Policy::Canary(CanaryPolicy { step: 0, ..policy }),
        );
        spec.validate()?;
        Ok(spec)
    }

    /// Starts an A/B test: `model` gets `weight` percent as arm `b`, the
    /// current primary keeps the rest as arm `a`.
    pub fn start_ab(&self, model: ModelRef, weight: u32, policy: AbPolicy) -> Change {
        self.expect_single("an A/B test")?;
        if weight == 0 || weight >= 100 {
            return conflict("the B arm's weight must be between 1 and 99");
        }
        let mut spec = self.with_candidate("b", model, weight, Policy::AbTest(policy));
        spec.arms[0].name = "a".into();
        spec.validate()?;
        Ok(spec)
    }

    /// Adds a shadow arm that sees `percent` of the live requests.
    pub fn start_shadow(&self, model: ModelRef, percent: u32) -> Change {
        self.expect_single("a shadow")?;
        let mut spec = self.clone();
        spec.arms.retain(|a| a.role != ArmRole::Standby);
        spec.arms.push(Arm {
            name: "shadow".into(),
            model,
            weight: 0,
            role: ArmRole::Shadow,
        });
        spec.policy = Policy::Shadow(ShadowPolicy { percent });
        spec.validate()?;
        Ok(spec)
    }

    fn expect_single(&self, what: &str) -> Result<(), DeploymentConflict> {
        match self.policy {
            Policy::Single => Ok(()),
            ref other => conflict(format!(
                "cannot start {what} while a {} rollout is running: promote or roll it back first",
                other.kind()
            )),
        }
    }

    fn with_candidate(
        &self,
        name: &str,
        model: ModelRef,
        weight: u32,
        policy: Policy,
    ) -> DeploymentSpec {
        let mut primary = self.primary().clone();
        primary.weight = 100 - weight;
        DeploymentSpec {
            arms: vec![primary, live(name, model, weight)],
            policy,
            settings: self.settings.clone(),
        }
    }

    /// The arm a promotion would make primary: the named one, or the
    /// experiment's candidate.
    fn candidate(&self, arm: Option<&str>) -> Result<&Arm, DeploymentConflict> {
        if let Some(name) = arm {
            return self
                .arm(name)
                .filter(|a| a.role != ArmRole::Standby)
                .ok_or_else(|| {
                    DeploymentConflict(format!("no live or shadow arm named '{name}'"))
                });
        }
        let name = match self.policy {
            Policy::Single => {
                return conflict("nothing to promote: no canary, A/B test or shadow is running")
            }
            Policy::Canary(_) => "canary",
            Policy::AbTest(_) => "b",
            Policy::Shadow(_) => "shadow",
        };
        self.arm(name)
            .ok_or_else(|| DeploymentConflict(format!("the '{name}' arm is missing")))
    }

    /// Makes the candidate (or the named arm) the single primary. The
    /// replaced primary becomes the standby, so a rollback is instant.
    pub fn promote(&self, arm: Option<&str>) -> Change {
        let chosen = self.keep_following(self.candidate(arm)?.model.clone());
        let previous = self.primary().model.clone();
        let mut arms = vec![live("primary", chosen, 100)];
        if previous != arms[0].model {
            arms.push(standby(previous));
        }
        Ok(DeploymentSpec {
            arms,
            policy: Policy::Single,
            settings: self.settings.clone(),
        })
    }

    /// Undoes the last move: ends a running experiment (the primary keeps
    /// all traffic), else swaps the standby back in, else returns to the
    /// primary of the most recent earlier revision that served another
    /// version (`history`, newest first).
    pub fn rollback(&self, history: &[DeploymentRevision]) -> Change {
        if self.policy != Policy::Single {
            return Ok(self.end_experiment());
        }
        if let Some(standby_arm) = self.standby() {
            let current = self.primary().model.clone();
            return Ok(DeploymentSpec {
                arms: vec![
                    live(
                        "primary",
                        self.keep_following(standby_arm.model.clone()),
                        100,
                    ),
                    standby(current),
                ],
                policy: Policy::Single,
                settings: self.settings.clone(),
            });
        }
        let current = &self.primary().model;
        let previous = history
            .iter()
            .map(|r| &r.spec.primary().model)
            .find(|m| (m.name.as_str(), m.version) != (current.name.as_str(), current.version));
        match previous {
            Some(model) => Ok(self.replace(model.clone())),
            None => {
                conflict("nothing to roll back to: this deployment has only served one version")
            }
        }
    }

    /// The spec without its experiment: the primary alone, at 100.
    pub fn end_experiment(&self) -> DeploymentSpec {
        let mut primary = self.primary().clone();
        primary.name = "primary".into();
        primary.weight = 100;
        let mut arms = vec![primary];
        arms.extend(self.standby().cloned());
        DeploymentSpec {
            arms,
            policy: Policy::Single,
            settings: self.settings.clone(),
        }
    }
}

fn live(name: &str, model: ModelRef, weight: u32) -> Arm {
    Arm {
        name: name.into(),
        model,
        weight,
        role: ArmRole::Live,
    }
}

fn standby(model: ModelRef) -> Arm {
    Arm {
        name: "standby".into(),
        model,
        weight: 0,
        role: ArmRole::Standby,
    }
}

/// What the canary arm did during the current step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmHealth {
    pub requests: u64,
    /// Requests that failed on the server's side (5xx).
    pub errors: u64,
    /// 99th-percentile latency in ms, if any request was timed.
    pub p99_ms: Option<f64>,
}

/// What the canary controller decided.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryDecision {
    /// Keep baking.
    Wait,
    /// Move to the next weight (the new spec).
    Step(DeploymentSpec),
    /// The last step baked healthily: the candidate becomes primary.
    Promote(DeploymentSpec),
    /// A bound was breached: back to the primary alone, with the reason.
    Rollback(DeploymentSpec, String),
}

impl CanaryPolicy {
    /// Judges the candidate's health in the current step at time `now_ms`.
    /// Breaches roll back as soon as `min_requests` have been seen (the
    /// error rate of fewer requests says little); a healthy step moves on
    /// once its interval has passed.
    pub fn decide(
        &self,
        spec: &DeploymentSpec,
        candidate: ArmHealth,
        now_ms: i64,
    ) -> CanaryDecision {
        if candidate.requests >= self.min_requests.max(1) {
            let error_rate = candidate.errors as f64 / candidate.requests as f64;
            if error_rate > self.max_error_rate {
                return CanaryDecision::Rollback(
                    spec.end_experiment(),
                    format!(
                        "canary error rate {:.1}% over {} requests exceeds the {:.1}% bound",
                        error_rate * 100.0,
                        candidate.requests,
                        self.max_error_rate * 100.0
                    ),
                );
            }
            if let (Some(bound), Some(p99)) = (self.max_p99_ms, candidate.p99_ms) {
                if p99 > bound {
                    return CanaryDecision::Rollback(
                        spec.end_experiment(),
                        format!("canary p99 latency {p99:.1} ms exceeds the {bound:.1} ms bound"),
                    );
                }
            }
        }
        let baked = now_ms - self.step_started_ms >= self.interval_ms;
        if !baked || candidate.requests < self.min_requests {
            return CanaryDecision::Wait;
        }
        let next = self.step + 1;
        if next >= self.steps.len() || self.steps[self.step] >= 100 {
            return match spec.promote(Some("canary")) {
                Ok(promoted) => CanaryDecision::Promote(promoted),
                Err(_) => CanaryDecision::Wait,
            };
        }
        let weight = self.steps[next];
        let mut stepped = spec.clone();
        for arm in stepped.arms.iter_mut() {
            match arm.name.as_str() {
                "canary" => arm.weight = weight,
                _ if arm.role == ArmRole::Live => arm.weight = 100 - weight,
                _ => {}
            }
        }
        stepped.policy = Policy::Canary(CanaryPolicy {
            step: next,
            step_started_ms: now_ms,
            ..self.clone()
        });
        CanaryDecision::Step(stepped)
    }
}

#[cfg(test)]
mod tests;
