//! Sextant's web UI: pages rendered on the server from plain data, with a
//! small stylesheet and script of our own.
//!
//! This crate knows nothing about HTTP, the store or permissions: the
//! server's UI routes (`sextant-server::routes::ui`) fetch what the caller
//! may see, build the page structs defined here and turn the returned
//! markup into a response. So every page is a pure function, testable
//! without a server, and a resource the caller may not see cannot reach a
//! page: it was never handed over.
//!
//! Pages keep their whole state in the URL (filters, sort, columns,
//! selection, chart settings); interaction (selection, charts, actions
//! that call the JSON APIs, keyboard) is `assets/sextant.js`, which the
//! page's Content-Security-Policy allows as the only script. User content
//! (names, params, tags, artifacts) is always escaped by the templates and
//! never becomes markup or script.
//!
//! Modules: [`chart`] shapes chart series (smoothing, min/max
//! downsampling); [`format`] prints times and numbers; [`pages`] holds one
//! module per page.

pub mod chart;
pub mod format;
pub mod pages;

pub use maud::Markup;
use maud::{html, DOCTYPE};

/// The stylesheet, served at [`CSS_PATH`].
pub const CSS: &str = include_str!("../assets/sextant.css");
/// The script, served at [`JS_PATH`].
pub const JS: &str = include_str!("../assets/sextant.js");
/// Where pages load the stylesheet from; the query changes with each
/// release so caches never mix versions.
pub const CSS_PATH: &str = concat!("/static/sextant.css?v=", env!("CARGO_PKG_VERSION"));
pub const JS_PATH: &str = concat!("/static/sextant.js?v=", env!("CARGO_PKG_VERSION"));

/// The Content-Security-Policy of every page: our own script and style
/// only, no inline script, no plugins, never framed by another site.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'self'";

/// Which part of the site a page belongs to (the highlighted tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Experiments,
    Models,
    Datasets,
    Deployments,
    Governance,
    Account,
}

/// Who is looking, for the page's chrome.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The signed-in user; `None` without authentication.
    pub username: Option<String>,
    pub is_admin: bool,
    /// The token the page's script sends with state-changing requests.
    pub csrf_token: Option<String>,
}

impl Viewer {
    /// The single local user of a server without authentication.
    pub fn local() -> Viewer {
        Viewer {
            username: None,
            is_admin: true,
            csrf_token: None,
        }
    }
}

/// The page around a body: head, navigation, keyboard help.
pub fn page(title: &str, section: Section, viewer: &Viewer, body: Markup) -> Markup {
    let tab = |target: Section, href: &str, label: &str| {
        html! {
            a.tab.active[section == target] href=(href) { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(token) = &viewer.csrf_token {
                    meta name="csrf-token" content=(token);
                }
                title { (title) " · Sextant" }
                link rel="stylesheet" href=(CSS_PATH);
                script src=(JS_PATH) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Sextant" }
                    nav {
                        (tab(Section::Experiments, "/", "Experiments"))
                        (tab(Section::Models, "/models", "Models"))
                        (tab(Section::Datasets, "/datasets", "Datasets"))
                        (tab(Section::Deployments, "/deployments", "Deployments"))
                        @if viewer.username.is_some() {
                            (tab(Section::Governance, "/governance", "Governance"))
                        }
                    }
                    div.who {
                        @match &viewer.username {
                            Some(name) => {
                                a.tab.active[section == Section::Account] href="/me" { (name) }
                                form.inline method="post" action="/logout" {
                                    @if let Some(token) = &viewer.csrf_token {
                                        input type="hidden" name="csrf_token" value=(token);
                                    }
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                            None => span.muted { "local, no sign-in" }
                        }
                        button.link.js-save-view type="button" title="A short link to this page as it is now" { "Save view" }
                        button.link.help-toggle type="button" title="Keyboard shortcuts (?)" { "?" }
                    }
                }
                div.saved-view hidden {
                    label { "Link to this view " input.js-view-link type="text" readonly; }
                    button.link.js-close-view type="button" { "Close" }
                }
                main { (body) }
                div #help .help hidden {
                    h3 { "Keyboard" }
                    dl {
                        dt { kbd { "/" } } dd { "focus the search or filter box" }
                        dt { kbd { "j" } " " kbd { "k" } } dd { "move down and up a table" }
                        dt { kbd { "x" } } dd { "select the current row" }
                        dt { kbd { "c" } } dd { "compare the selected runs" }
                        dt { kbd { "Enter" } } dd { "open the current row" }
                        dt { kbd { "?" } } dd { "show or hide this list" }
                    }
                }
            }
        }
    }
}

/// A page's "nothing here" body: what was not found, never whether it
/// exists for someone else.
pub fn not_found(what: &str, viewer: &Viewer) -> Markup {
    page(
        "Not found",
        Section::Experiments,
        viewer,
        html! {
            h1 { "Not found" }
            p { (what) " does not exist, or you may not see it." }
            p { a href="/" { "Back to the experiments" } }
        },
    )
}

/// An error page for a request the page could not serve.
pub fn error_page(message: &str, viewer: &Viewer) -> Markup {
    page(
        "Error",
        Section::Experiments,
        viewer,
        html! {
            h1 { "Something went wrong" }
            p.error { (message) }
        },
    )
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A query string from pairs, leaving out empty values.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_never_becomes_markup() {
        let viewer = Viewer {
            username: Some("<script>alert(1)</script>".into()),
            is_admin: false,
            csrf_token: Some("\"><img src=x onerror=alert(1)>".into()),
        };
        let html = page(
            "<b>title</b>",
            Section::Account,
            &viewer,
            html! { p { "x" } },
        )
        .into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>title"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            query(&[("filter", "metrics.a > 1 OR x='&'"), ("page", "")]),
            "?filter=metrics.a%20%3E%201%20OR%20x%3D%27%26%27"
        );
    }
}
