//! Promotion gates: checks an approved transition must pass before it is
//! applied. A gate vetoes with a reason; the request then stays pending and
//! the veto is reported to the approver (and audited). Model validation
//! plugs in here as one more gate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sextant_core::{Stage, TransitionRequest, TransitionTarget};
use sextant_store::{Store, StoreError};

/// Why a gate refused a promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veto {
    pub gate: String,
    pub reason: String,
}

pub type GateFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Veto>> + Send + 'a>>;

pub trait PromotionGate: Send + Sync {
    fn name(&self) -> &'static str;
    fn check<'a>(&'a self, store: &'a Store, request: &'a TransitionRequest) -> GateFuture<'a>;
}

pub(crate) fn default_gates() -> Vec<Arc<dyn PromotionGate>> {
    vec![Arc::new(VersionStillExists)]
}

/// A version deleted after the request was made cannot be promoted (the
/// request would otherwise fail half-way, or point an alias at nothing);
/// archiving needs no check.
pub struct VersionStillExists;

impl PromotionGate for VersionStillExists {
    fn name(&self) -> &'static str {
        "version-still-exists"
    }

    fn check<'a>(&'a self, store: &'a Store, request: &'a TransitionRequest) -> GateFuture<'a> {
        Box::pin(async move {
            let veto = |reason: String| Veto {
                gate: self.name().to_string(),
                reason,
            };
            if request.target == TransitionTarget::Stage(Stage::Archived) {
                return Ok(());
            }
            match store
                .get_model_version(&request.name, &request.version.to_string())
                .await
            {
                Ok(_) => Ok(()),
                Err(StoreError::NotFound(_)) => Err(veto(format!(
                    "version {} of '{}' no longer exists",
                    request.version, request.name
                ))),
                Err(err) => Err(veto(format!("cannot read the version: {err}"))),
            }
        })
    }
}
