//! Signing in and out, and the viewer's own page with their API tokens.

use maud::{html, Markup};
use sextant_core::ApiToken;

use crate::{format, page, Section, Viewer};

/// The sign-in form; `error` after a refused attempt (the same words for
/// an unknown user and a wrong password).
pub fn render_login(next: &str, error: Option<&str>) -> Markup {
    let viewer = Viewer {
        username: None,
        is_admin: false,
        csrf_token: None,
    };
    let body = html! {
        div.login {
            h1 { "Sign in" }
            @if let Some(error) = error { p.error { (error) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "User " input type="text" name="username" autocomplete="username" required autofocus; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
            p.muted { "Programs sign in with an API token: " code { "MLFLOW_TRACKING_TOKEN" } "." }
        }
    };
    page("Sign in", Section::Account, &viewer, body)
}

pub struct MePage {
    pub username: String,
    pub is_admin: bool,
    pub groups: Vec<String>,
    pub tokens: Vec<ApiToken>,
}

pub fn render_me(data: &MePage, viewer: &Viewer) -> Markup {
    let body = html! {
        h1 { (data.username) }
        p { @if data.is_admin { "Administrator. " } @if !data.groups.is_empty() { "Groups: " (data.groups.join(", ")) } }
        section {
            h2 { "API tokens" }
            form.inline.js-create-token {
                input type="text" name="name" placeholder="token name (e.g. ci)" required maxlength="256";
                select name="scope" {
                    option value="read,write" { "read and write" }
                    option value="read" { "read only" }
                    option value="invoke" { "invoke deployments" }
                }
                input type="number" name="days" placeholder="expires in days" min="1";
                button type="submit" { "Create token" }
            }
            p.js-new-token.secret hidden {}
            @if data.tokens.is_empty() { p.empty { "No tokens." } } @else {
                table.grid.compact {
                    thead { tr { th { "Name" } th { "Scopes" } th { "Created" } th { "Expires" } th { "Last used" } th {} } }
                    tbody {
                        @for token in &data.tokens {
                            @let revoked = token.revoked_at.is_some();
                            tr.deleted[revoked] data-token=(token.token_id) {
                                td { (token.name) }
                                td { (token.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (format::time(token.created_at)) }
                                td { (token.expires_at.map(format::time).unwrap_or_else(|| "never".into())) }
                                td { (token.last_used_at.map(format::time).unwrap_or_else(|| "never".into())) }
                                td { @if revoked { "revoked" } @else { button.link.danger.js-revoke-token type="button" { "Revoke" } } }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Me", Section::Account, viewer, body)
}
