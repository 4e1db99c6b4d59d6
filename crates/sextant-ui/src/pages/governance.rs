//! Governance for the signed-in: the transition-requests inbox for
//! everyone, and for admins users, groups, grants and the audit log with
//! the chain's verification.

use maud::{html, Markup};
use sextant_core::{AuditEntry, Grant, Group, TransitionRequest, User};

use crate::pages::registry::requests_table;
use crate::{format, page, query, Section, Viewer};

pub struct GovernancePage {
    pub requests: Vec<TransitionRequest>,
    pub may_approve_any: bool,
    /// Admins only.
    pub users: Option<Vec<User>>,
    pub groups: Option<Vec<Group>>,
    pub grants: Option<Vec<Grant>>,
    pub audit: Option<AuditView>,
}

pub struct AuditView {
    pub entries: Vec<AuditEntry>,
    pub actor: String,
    pub resource_type: String,
    pub resource_id: String,
    /// As typed (UTC), for the filter form.
    pub since: String,
    pub until: String,
    pub chain_ok: bool,
    pub chain_problem: Option<String>,
    pub checked: i64,
    pub next_page: Option<String>,
}

pub fn render(data: &GovernancePage, viewer: &Viewer) -> Markup {
    let body = html! {
        h1 { "Governance" }
        section {
            h2 { "Transition requests" }
            @if data.requests.is_empty() { p.empty { "No requests you may see." } }
            @else { (requests_table(&data.requests, data.may_approve_any)) }
        }
        @if let Some(users) = &data.users {
            section {
                h2 { "Users" }
                form.inline.js-create-user {
                    input type="text" name="username" placeholder="username" required;
                    input type="password" name="password" placeholder="password (8+ characters)" required minlength="8";
                    label { input type="checkbox" name="is_admin"; " admin" }
                    button type="submit" { "Create user" }
                }
                table.grid.compact {
                    thead { tr { th { "User" } th { "Admin" } th { "Disabled" } th { "Groups" } th { "Created" } th {} } }
                    tbody { @for user in users {
                        tr data-user=(user.username) {
                            td { (user.username) } td { @if user.is_admin { "yes" } } td { @if user.disabled { "yes" } }
                            td { (user.groups.join(", ")) } td { (format::time(user.created_at)) }
                            td.actions {
                                button.link.js-user-flag type="button" data-field="is_admin" data-value=(!user.is_admin) {
                                    @if user.is_admin { "Remove admin" } @else { "Make admin" }
                                }
                                button.link.js-user-flag type="button" data-field="disabled" data-value=(!user.disabled) {
                                    @if user.disabled { "Enable" } @else { "Disable" }
                                }
                            }
                        }
                    } }
                }
            }
        }
        @if let Some(groups) = &data.groups {
            section {
                h2 { "Groups" }
                form.inline.js-create-group {
                    input type="text" name="name" placeholder="group name" required;
                    button type="submit" { "Create group" }
                }
                @if !groups.is_empty() {
                    form.inline.js-add-member {
                        select name="group" { @for group in groups { option value=(group.name) { (group.name) } } }
                        input type="text" name="username" placeholder="username" required;
                        button type="submit" { "Add member" }
                    }
                }
                table.grid.compact {
                    thead { tr { th { "Group" } th { "Members" } th { "Created" } th {} } }
                    tbody { @for group in groups {
                        tr data-group=(group.name) {
                            td { (group.name) }
                            td { @for member in &group.members {
                                span.chip { (member) " " button.link.js-remove-member type="button" data-username=(member) title="Remove from the group" { "×" } } " "
                            } }
                            td { (format::time(group.created_at)) }
                            td.actions { button.link.danger.js-delete-group type="button" { "Delete" } }
                        }
                    } }
                }
            }
        }
        @if let Some(grants) = &data.grants {
            section {
                h2 { "Permissions" }
                form.inline.js-grant {
                    select name="resource_type" { option value="experiment" { "experiment" } option value="registered_model" { "registered model" } option value="deployment" { "deployment" } }
                    input type="text" name="resource_id" placeholder="id or name" required;
                    input type="text" name="principal" placeholder="user:NAME or group:NAME" required;
                    select name="permission" { @for p in ["read", "edit", "manage", "approve", "invoke", "deploy"] { option value=(p) { (p) } } }
                    button type="submit" { "Grant" }
                }
                table.grid.compact {
                    thead { tr { th { "Resource" } th { "Principal" } th { "Permission" } th { "Since" } th {} } }
                    tbody { @for grant in grants {
                        tr data-resource-type=(grant.resource_kind.as_str()) data-resource-id=(grant.resource_id)
                            data-principal=(format!("{}:{}", grant.principal_kind.as_str(), grant.principal_name)) data-permission=(grant.permission.as_str()) {
                            td { (grant.resource_kind.as_str()) " " (grant.resource_id) } td { (grant.principal_kind.as_str()) ":" (grant.principal_name) }
                            td { (grant.permission.as_str()) } td { (format::time(grant.granted_at)) }
                            td.actions { button.link.danger.js-revoke-grant type="button" { "Revoke" } }
                        }
                    } }
                }
            }
        }
        @if let Some(audit) = &data.audit {
            section #audit {
                h2 { "Audit log" }
                p class=(if audit.chain_ok { "ok" } else { "error" }) {
                    @if audit.chain_ok { "Chain intact: " (audit.checked) " entries verified." }
                    @else { "Chain broken: " (audit.chain_problem.as_deref().unwrap_or("")) }
                }
                form.searchbar method="get" action="/governance" {
                    input type="text" name="actor" value=(audit.actor) placeholder="actor";
                    input type="text" name="resource_type" value=(audit.resource_type) placeholder="resource type";
                    input type="text" name="resource_id" value=(audit.resource_id) placeholder="resource id";
                    label { "from " input type="datetime-local" name="since" value=(audit.since) title="UTC"; }
                    label { "to " input type="datetime-local" name="until" value=(audit.until) title="UTC"; }
                    button type="submit" { "Filter" }
                }
                table.grid.compact {
                    thead { tr { th.num { "#" } th { "When" } th { "Who" } th { "Action" } th { "Resource" } th { "Outcome" } th { "Detail" } } }
                    tbody { @for entry in &audit.entries {
                        @let e = &entry.entry;
                        tr {
                            td.num { (entry.seq) } td { (format::time(e.ts)) } td { (e.actor) }
                            td { code { (e.method) " " (e.action) } }
                            td { (e.resource_type) " " (e.resource_id) }
                            td { (e.outcome) " " (e.status) }
                            td { (format::clip(&e.detail, 120)) }
                        }
                    } }
                }
                @if let Some(token) = &audit.next_page {
                    p { a.more href=(format!("/governance{}#audit", query(&[("actor", &audit.actor), ("resource_type", &audit.resource_type), ("resource_id", &audit.resource_id), ("since", &audit.since), ("until", &audit.until), ("page", token)]))) { "Next page →" } }
                }
            }
        }
    };
    page("Governance", Section::Governance, viewer, body)
}
