//! The commands that talk to a running server's native API (`/api/v1`):
//! users, groups, tokens, permissions, transition requests and the audit
//! log. They find the server through `--server`, `SEXTANT_SERVER` or
//! `MLFLOW_TRACKING_URI`, and authenticate with the same variables as the
//! `mlflow` client (`MLFLOW_TRACKING_TOKEN`, or `MLFLOW_TRACKING_USERNAME`
//! and `MLFLOW_TRACKING_PASSWORD`; `SEXTANT_TOKEN`, `SEXTANT_USERNAME`,
//! `SEXTANT_PASSWORD` take precedence).

use std::io::{BufRead, Write};

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Args, Clone)]
pub struct Connection {
    /// The Sextant server.
    #[arg(long, global = true, env = "SEXTANT_SERVER")]
    server: Option<String>,
    /// How answers are printed: tables on a terminal and JSON when piped
    /// (auto), or always one of them.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "SEXTANT_FORMAT"
    )]
    format: crate::output::Format,
}

impl Connection {
    /// Makes `--format` this process's output format (commands that may
    /// not build a [`Client`] call it themselves).
    pub fn apply_format(&self) {
        crate::output::set_format(self.format);
    }
}

pub struct Client {
    base: String,
    http: reqwest::Client,
    authorization: Option<String>,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

impl Client {
    pub fn new(connection: &Connection) -> anyhow::Result<Client> {
        crate::output::set_format(connection.format);
        let base = connection
            .server
            .clone()
            .or_else(|| env(&["MLFLOW_TRACKING_URI"]).filter(|u| u.starts_with("http")))
            .unwrap_or_else(|| "http://127.0.0.1:5000".to_string());
        let authorization = match env(&["SEXTANT_TOKEN", "MLFLOW_TRACKING_TOKEN"]) {
            Some(token) => Some(format!("Bearer {token}")),
            None => match (
                env(&["SEXTANT_USERNAME", "MLFLOW_TRACKING_USERNAME"]),
                env(&["SEXTANT_PASSWORD", "MLFLOW_TRACKING_PASSWORD"]),
            ) {
                (Some(user), Some(password)) => Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )),
                _ => None,
            },
        };
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            authorization,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.request(method, path, query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.submit(request).await
    }

    /// A request to `/api/v1{path}` carrying this client's credentials.
    fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        let url = format!("{}/api/v1{path}", self.base);
        let request = self.http.request(method, &url).query(query);
        match &self.authorization {
            Some(authorization) => request.header(reqwest::header::AUTHORIZATION, authorization),
            None => request,
        }
    }

    /// Sends a request; an answer other than a success becomes an error
    /// carrying the server's message.
    async fn submit(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        Self::successful(response).await
    }

    /// The response when it is a success, else the server's message as an error.
    async fn successful(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("the server answered {status}: {message}")
    }

    /// The body of `GET /api/v1{path}` as bytes.
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self.submit(self.request(Method::GET, path, &[])).await?;
        Ok(response.bytes().await?.to_vec())
    }

    /// An artifact's bytes through the server's artifact proxy
    /// (`mlflow-artifacts:/{path}`).
    pub async fn get_artifact(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}", self.base);
        let mut request = self.http.get(&url);
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        Ok(self.submit(request).await?.bytes().await?.to_vec())
    }

    /// The server's base URL (what `MLFLOW_TRACKING_URI` names).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The API token this client sends, if it authenticates with one.
    pub fn bearer_token(&self) -> Option<&str> {
        self.authorization.as_deref()?.strip_prefix("Bearer ")
    }

    /// A call to MLflow's REST API (`/api/2.0/mlflow{path}`).
    pub async fn mlflow(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/api/2.0/mlflow{path}", self.base);
        let mut request = self.http.request(method, &url).query(query);
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = self.submit(request).await?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    /// Uploads `bytes` through the server's artifact proxy to
    /// `mlflow-artifacts:/{path}`.
    pub async fn put_artifact(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}", self.base);
        let mut request = self.http.put(&url).body(bytes);
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        self.submit(request).await?;
        Ok(())
    }

    /// The same server and credentials, for the serving machinery.
    pub fn remote_server(&self) -> sextant_server::serving::RemoteServer {
        sextant_server::serving::RemoteServer {
            client: self.http.clone(),
            base_url: self.base.clone(),
            authorization: self.authorization.clone(),
        }
    }

    /// A call whose body is a file's bytes (a CSV or Parquet table).
    pub async fn call_with_bytes(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        bytes: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let request = self
            .request(method, path, query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        let response = self.submit(request).await?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let response = self.send(method, path, query, body).await?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }
}

impl Client {
    /// A call that may load models (creating or changing a deployment):
    /// while it runs, the stages the server reports for it (fetching files,
    /// building a Python environment, loading, warming up) are printed on
    /// standard error, so a slow first load says what it is doing.
    pub async fn call_following(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut request = self
            .request(method, path, &[])
            .header("x-sextant-progress", &id);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let call = self.submit(request);
        tokio::pin!(call);
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(400));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shown = 0;
        let response = loop {
            tokio::select! {
                response = &mut call => break response,
                _ = ticker.tick() => shown = self.show_progress(&id, shown).await,
            }
        };
        // The last stages (ready, or where it failed) arrive with the answer.
        self.show_progress(&id, shown).await;
        Ok(response?.json().await.unwrap_or(Value::Null))
    }

    /// Prints the stages of request `id` after the first `shown`; returns
    /// how many have been shown. A server that does not report progress
    /// (an older one, or one without serving) just shows nothing.
    async fn show_progress(&self, id: &str, shown: usize) -> usize {
        let answer = self
            .request(Method::GET, &format!("/progress/{id}"), &[])
            .send()
            .await;
        let Ok(response) = answer else { return shown };
        let Ok(report) = response.json::<Value>().await else {
            return shown;
        };
        let stages = report["stages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for stage in stages.iter().skip(shown) {
            eprintln!(
                "sextant: {} ({:.1} s)",
                stage["stage"].as_str().unwrap_or(""),
                stage["seconds"].as_f64().unwrap_or(0.0)
            );
        }
        stages.len().max(shown)
    }
}

pub fn print(value: &Value) {
    crate::output::print(value);
}

/// A password from the first line of standard input (for scripts), never
/// from a flag (which would land in the shell history).
fn read_password(what: &str) -> anyhow::Result<String> {
    if let Some(password) = env(&["SEXTANT_NEW_PASSWORD"]) {
        return Ok(password);
    }
    eprint!("{what} (one line on standard input): ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("while reading the password")?;
    // A piped password is not echoed, so end the prompt's line ourselves.
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!();
    }
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password given on standard input (or in SEXTANT_NEW_PASSWORD)");
    }
    Ok(password)
}

fn opt(query: &mut Vec<(&'static str, String)>, key: &'static str, value: &Option<String>) {
    if let Some(value) = value {
        query.push((key, value.clone()));
    }
}

#[derive(Args)]
pub struct BootstrapArgs {
    /// The one-time token the server printed at its first start.
    #[arg(long)]
    token: String,
}

pub async fn bootstrap(connection: &Connection, args: BootstrapArgs) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let password = read_password("new admin password")?;
    client
        .call(
            Method::POST,
            "/bootstrap",
            &[],
            Some(json!({ "token": args.token, "password": password })),
        )
        .await?;
    eprintln!("The admin password is set: sign in as 'admin'.");
    Ok(())
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Who you are signed in as.
    Whoami,
    /// Every user, with whether they are an admin or disabled (admins).
    List,
    /// Create a user; the password is read from standard input.
    Create {
        /// The name the user signs in with.
        username: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
    /// One user, with their groups (admins, or yourself).
    Get {
        /// The user's name.
        username: String,
    },
    /// Set a password (read from standard input).
    Passwd {
        /// The user whose password changes (admins; anyone for themselves).
        username: String,
    },
    /// Stop a user from signing in; their tokens stop working too.
    Disable {
        /// The user to disable.
        username: String,
    },
    /// Let a disabled user sign in again.
    Enable {
        /// The user to enable.
        username: String,
    },
    /// Delete a user and their tokens; the audit log keeps their name.
    Delete {
        /// The user to delete.
        username: String,
    },
}

pub async fn users(connection: &Connection, command: UsersCommand) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let value = match command {
        UsersCommand::Whoami => client.call(Method::GET, "/me", &[], None).await?,
        UsersCommand::List => client.call(Method::GET, "/users", &[], None).await?,
        UsersCommand::Create { username, admin } => {
            let password = read_password(&format!("password for {username}"))?;
            client
                .call(
                    Method::POST,
                    "/users",
                    &[],
                    Some(json!({ "username": username, "password": password, "is_admin": admin })),
                )
                .await?
        }
        UsersCommand::Get { username } => {
            client
                .call(Method::GET, &format!("/users/{username}"), &[], None)
                .await?
        }
        UsersCommand::Passwd { username } => {
            let password = read_password(&format!("new password for {username}"))?;
            patch_user(&client, &username, json!({ "password": password })).await?
        }
        UsersCommand::Disable { username } => {
            patch_user(&client, &username, json!({ "disabled": true })).await?
        }
        UsersCommand::Enable { username } => {
            patch_user(&client, &username, json!({ "disabled": false })).await?
        }
        UsersCommand::Delete { username } => {
            client
                .call(Method::DELETE, &format!("/users/{username}"), &[], None)
                .await?
        }
    };
    print(&value);
    Ok(())
}

async fn patch_user(client: &Client, username: &str, change: Value) -> anyhow::Result<Value> {
    client
        .call(
            Method::PATCH,
            &format!("/users/{username}"),
            &[],
            Some(change),
        )
        .await
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// Every group with its members.
    List,
    /// Create an empty group; grant it permissions with `sextant permissions grant --principal group:NAME`.
    Create {
        /// The group's name.
        name: String,
    },
    /// One group and its members.
    Get {
        /// The group's name.
        name: String,
    },
    /// Delete a group; its members lose what it was granted.
    Delete {
        /// The group's name.
        name: String,
    },
    /// Add a user to a group.
    AddMember {
        /// The group's name.
        group: String,
        /// The user to add.
        username: String,
    },
    /// Remove a user from a group.
    RemoveMember {
        /// The group's name.
        group: String,
        /// The user to remove.
        username: String,
    },
}

pub async fn groups(connection: &Connection, command: GroupsCommand) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let value = match command {
        GroupsCommand::List => client.call(Method::GET, "/groups", &[], None).await?,
        GroupsCommand::Create { name } => {
            client
                .call(Method::POST, "/groups", &[], Some(json!({ "name": name })))
                .await?
        }
        GroupsCommand::Get { name } => {
            client
                .call(Method::GET, &format!("/groups/{name}"), &[], None)
                .await?
        }
        GroupsCommand::Delete { name } => {
            client
                .call(Method::DELETE, &format!("/groups/{name}"), &[], None)
                .await?
        }
        GroupsCommand::AddMember { group, username } => {
            client
                .call(
                    Method::PUT,
                    &format!("/groups/{group}/members/{username}"),
                    &[],
                    None,
                )
                .await?
        }
        GroupsCommand::RemoveMember { group, username } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/groups/{group}/members/{username}"),
                    &[],
                    None,
                )
                .await?
        }
    };
    print(&value);
    Ok(())
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Your tokens (admins: `--user NAME`, or `--user '*'` for all).
    List {
        /// Whose tokens (admins); `*` for everyone's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Create a token; its secret is printed once.
    Create {
        /// A name to recognise the token by in listings.
        #[arg(long)]
        name: String,
        /// read, write or invoke; repeat for several (default read and write).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime in days.
        #[arg(long)]
        expires_in_days: Option<i64>,
        /// Admins: create the token for this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token: requests carrying it are refused from now on.
    Revoke {
        /// The token's id, as `tokens list` shows it (not its secret).
        token_id: String,
    },
}

pub async fn tokens(connection: &Connection, command: TokensCommand) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let value = match command {
        TokensCommand::List { user } => {
            let mut query = Vec::new();
            opt(&mut query, "username", &user);
            client.call(Method::GET, "/tokens", &query, None).await?
        }
        TokensCommand::Create {
            name,
            scopes,
            expires_in_days,
            user,
        } => {
            let mut body = json!({ "name": name });
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(days) = expires_in_days {
                body["expires_in_seconds"] = json!(days * 86_400);
            }
            if let Some(user) = user {
                body["username"] = json!(user);
            }
            client
                .call(Method::POST, "/tokens", &[], Some(body))
                .await?
        }
        TokensCommand::Revoke { token_id } => {
            client
                .call(Method::DELETE, &format!("/tokens/{token_id}"), &[], None)
                .await?
        }
    };
    print(&value);
    Ok(())
}

/// The resource a grant is on: exactly one of these.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct ResourceArg {
    /// An experiment id.
    #[arg(long)]
    experiment: Option<String>,
    /// A registered model name.
    #[arg(long)]
    model: Option<String>,
    /// A deployment name.
    #[arg(long)]
    deployment: Option<String>,
}

impl ResourceArg {
    fn pair(&self) -> (&'static str, String) {
        resource_pair(&self.experiment, &self.model, &self.deployment)
            .expect("clap requires exactly one")
    }
}

/// At most one resource; none lists every grant (admins).
#[derive(Args, Clone)]
#[group(required = false, multiple = false)]
pub struct ResourceFilter {
    /// An experiment id.
    #[arg(long)]
    experiment: Option<String>,
    /// A registered model name.
    #[arg(long)]
    model: Option<String>,
    /// A deployment name.
    #[arg(long)]
    deployment: Option<String>,
}

fn resource_pair(
    experiment: &Option<String>,
    model: &Option<String>,
    deployment: &Option<String>,
) -> Option<(&'static str, String)> {
    match (experiment, model, deployment) {
        (Some(id), _, _) => Some(("experiment", id.clone())),
        (_, Some(name), _) => Some(("registered_model", name.clone())),
        (_, _, Some(name)) => Some(("deployment", name.clone())),
        _ => None,
    }
}

/// Who a grant is for: a user or a group.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct PrincipalArg {
    /// A user name.
    #[arg(long)]
    user: Option<String>,
    /// A group name.
    #[arg(long)]
    group: Option<String>,
}

impl PrincipalArg {
    fn text(&self) -> String {
        match (&self.user, &self.group) {
            (Some(user), _) => format!("user:{user}"),
            (_, Some(group)) => format!("group:{group}"),
            _ => unreachable!("clap requires one"),
        }
    }
}

#[derive(Subcommand)]
pub enum PermissionsCommand {
    /// Grants on one resource (needs manage on it), or every grant (admins).
    List {
        #[command(flatten)]
        resource: ResourceFilter,
    },
    /// Grant a user or group a permission on one resource (needs manage on it).
    Grant {
        #[command(flatten)]
        resource: ResourceArg,
        #[command(flatten)]
        principal: PrincipalArg,
        /// read, edit, manage, approve or deploy (models), invoke (deployments).
        #[arg(long)]
        permission: String,
    },
    /// Take back a permission granted with `grant`.
    Revoke {
        #[command(flatten)]
        resource: ResourceArg,
        #[command(flatten)]
        principal: PrincipalArg,
        /// The permission to take back, as it was granted.
        #[arg(long)]
        permission: String,
    },
}

pub async fn permissions(
    connection: &Connection,
    command: PermissionsCommand,
) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let value = match command {
        PermissionsCommand::List { resource } => {
            let query =
                match resource_pair(&resource.experiment, &resource.model, &resource.deployment) {
                    Some((kind, id)) => {
                        vec![("resource_type", kind.to_string()), ("resource_id", id)]
                    }
                    None => Vec::new(),
                };
            client
                .call(Method::GET, "/permissions", &query, None)
                .await?
        }
        PermissionsCommand::Grant {
            resource,
            principal,
            permission,
        } => {
            let (kind, id) = resource.pair();
            let body = json!({ "resource_type": kind, "resource_id": id, "principal": principal.text(), "permission": permission });
            client
                .call(Method::PUT, "/permissions", &[], Some(body))
                .await?
        }
        PermissionsCommand::Revoke {
            resource,
            principal,
            permission,
        } => {
            let (kind, id) = resource.pair();
            let body = json!({ "resource_type": kind, "resource_id": id, "principal": principal.text(), "permission": permission });
            client
                .call(Method::DELETE, "/permissions", &[], Some(body))
                .await?
        }
    };
    print(&value);
    Ok(())
}

#[derive(Subcommand)]
pub enum TransitionsCommand {
    /// Ask for a version to move to a stage or alias.
    Request {
        /// The registered model.
        #[arg(long)]
        model: String,
        /// The version to move.
        #[arg(long)]
        version: i64,
        /// The stage to move it to: Staging, Production or Archived.
        #[arg(long, conflicts_with = "alias", required_unless_present = "alias")]
        stage: Option<String>,
        /// The alias to point at it, such as `champion`.
        #[arg(long)]
        alias: Option<String>,
        /// Why, for the approver and the audit log.
        #[arg(long, default_value = "")]
        comment: String,
        /// On approval, archive the versions now in the target stage.
        #[arg(long)]
        archive_existing_versions: bool,
    },
    /// Transition requests you may see, newest first.
    List {
        /// Only this model's requests.
        #[arg(long)]
        model: Option<String>,
        /// Only this version's requests (with `--model`).
        #[arg(long)]
        version: Option<i64>,
        /// pending, approved, rejected or cancelled.
        #[arg(long)]
        status: Option<String>,
    },
    /// Approve a pending request (needs approve on the model); the move happens now.
    Approve {
        /// The request's id, as `list` shows it.
        request_id: i64,
        /// A note kept with the decision.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject a pending request (needs approve on the model).
    Reject {
        /// The request's id, as `list` shows it.
        request_id: i64,
        /// Why, kept with the decision.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Withdraw a request you made that is still pending.
    Cancel {
        /// The request's id, as `list` shows it.
        request_id: i64,
        /// A note kept with the cancellation.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Show a model's protected stages and aliases.
    Policy {
        /// The registered model.
        model: String,
    },
    /// Set a model's protected stages and aliases (admins).
    SetPolicy {
        /// The registered model.
        model: String,
        /// A stage whose moves need approval; repeat for several.
        #[arg(long = "protect-stage")]
        stages: Vec<String>,
        /// An alias whose moves need approval; repeat for several.
        #[arg(long = "protect-alias")]
        aliases: Vec<String>,
        /// Let a requester approve their own request.
        #[arg(long)]
        allow_self_approval: bool,
    },
}

pub async fn transitions(
    connection: &Connection,
    command: TransitionsCommand,
) -> anyhow::Result<()> {
    let client = Client::new(connection)?;
    let decide = |id: i64, verb: &str, comment: String| {
        (
            format!("/transition-requests/{id}/{verb}"),
            json!({ "comment": comment }),
        )
    };
    // The decision's endpoint, for the three commands that decide.
    let verb = match &command {
        TransitionsCommand::Approve { .. } => "approve",
        TransitionsCommand::Reject { .. } => "reject",
        TransitionsCommand::Cancel { .. } => "cancel",
        _ => "",
    };
    let value = match command {
        TransitionsCommand::Request {
            model,
            version,
            stage,
            alias,
            comment,
            archive_existing_versions,
        } => {
            let body = json!({
                "name": model, "version": version, "stage": stage, "alias": alias,
                "comment": comment, "archive_existing_versions": archive_existing_versions,
            });
            client
                .call(Method::POST, "/transition-requests", &[], Some(body))
                .await?
        }
        TransitionsCommand::List {
            model,
            version,
            status,
        } => {
            let mut query = Vec::new();
            opt(&mut query, "name", &model);
            opt(&mut query, "version", &version.map(|v| v.to_string()));
            opt(&mut query, "status", &status);
            client
                .call(Method::GET, "/transition-requests", &query, None)
                .await?
        }
        TransitionsCommand::Approve {
            request_id,
            comment,
        }
        | TransitionsCommand::Reject {
            request_id,
            comment,
        }
        | TransitionsCommand::Cancel {
            request_id,
            comment,
        } => {
            let (path, body) = decide(request_id, verb, comment);
            client.call(Method::POST, &path, &[], Some(body)).await?
        }
        TransitionsCommand::Policy { model } => {
            client
                .call(
                    Method::GET,
                    &format!("/registered-models/{model}/policy"),
                    &[],
                    None,
                )
                .await?
        }
        TransitionsCommand::SetPolicy {
            model,
            stages,
            aliases,
            allow_self_approval,
        } => {
            let body = json!({
                "protected_stages": stages, "protected_aliases": aliases,
                "allow_self_approval": allow_self_approval,
            });
            client
                .call(
                    Method::PUT,
                    &format!("/registered-models/{model}/policy"),
                    &[],
                    Some(body),
                )
                .await?
        }
    };
    print(&value);
    Ok(())
}

#[derive(Args, Clone, Default)]
pub struct AuditFilter {
    /// The kind of resource, as `audit list` shows it (experiment, registered_model, deployment, user…).
    #[arg(long)]
    resource_type: Option<String>,
    /// The resource's id or name (with `--resource-type`).
    #[arg(long)]
    resource_id: Option<String>,
    /// Entries by this user only.
    #[arg(long)]
    actor: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    #[arg(long)]
    since: Option<i64>,
    /// Milliseconds since the epoch, exclusive.
    #[arg(long)]
    until: Option<i64>,
}

impl AuditFilter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        opt(&mut query, "resource_type", &self.resource_type);
        opt(&mut query, "resource_id", &self.resource_id);
        opt(&mut query, "actor", &self.actor);
        opt(&mut query, "since", &self.since.map(|v| v.to_string()));
        opt(&mut query, "until", &self.until.map(|v| v.to_string()));
        query
    }
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Entries, oldest first, as JSON.
    List {
        #[command(flatten)]
        filter: AuditFilter,
        /// The most entries to print.
        #[arg(long, default_value_t = 100)]
        max_results: i64,
    },
    /// Every matching entry as JSON lines, to standard output.
    Export {
        #[command(flatten)]
        filter: AuditFilter,
    },
    /// Check the hash chain: through the server, or straight on the database
    /// with `--backend-store-uri`. Exits 1 and names the first bad entry if
    /// the log was tampered with.
    Verify {
        /// The server's database (`sqlite:///…` or `postgresql://…`), to verify without a server.
        #[arg(long)]
        backend_store_uri: Option<String>,
        /// The head hash an earlier `verify` printed: fail if the log no
        /// longer reaches it (entries cut off its end).
        #[arg(long)]
        expected_head: Option<String>,
    },
}

pub async fn audit(connection: &Connection, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List {
            filter,
            max_results,
        } => {
            let client = Client::new(connection)?;
            let mut query = filter.query();
            query.push(("max_results", max_results.to_string()));
            print(&client.call(Method::GET, "/audit", &query, None).await?);
            Ok(())
        }
        AuditCommand::Export { filter } => {
            let client = Client::new(connection)?;
            let mut response = client
                .send(Method::GET, "/audit/export", &filter.query(), None)
                .await?;
            let mut stdout = std::io::stdout().lock();
            while let Some(chunk) = response.chunk().await? {
                stdout.write_all(&chunk)?;
            }
            Ok(())
        }
        AuditCommand::Verify {
            backend_store_uri,
            expected_head,
        } => {
            let verdict = match backend_store_uri {
                Some(uri) => {
                    let store = sextant_store::Store::open(&sextant_store::StoreConfig {
                        database_url: uri,
                        default_artifact_root: "mlflow-artifacts:/".into(),
                        max_connections: 2,
                    })
                    .await
                    .context("while opening the metadata store")?;
                    let verdict = store.verify_audit(expected_head.as_deref()).await;
                    store.close().await;
                    let verdict = verdict?;
                    json!({
                        "ok": verdict.first_bad.is_none(),
                        "entries_checked": verdict.entries_checked,
                        "first_bad_seq": verdict.first_bad.as_ref().map(|(seq, _)| seq),
                        "problem": verdict.first_bad.as_ref().map(|(_, why)| why),
                        "head_hash": verdict.head_hash,
                    })
                }
                None => {
                    let query: Vec<(&str, String)> = expected_head
                        .map(|head| ("expected_head", head))
                        .into_iter()
                        .collect();
                    Client::new(connection)?
                        .call(Method::GET, "/audit/verify", &query, None)
                        .await?
                }
            };
            print(&verdict);
            if verdict["ok"] == json!(true) {
                eprintln!(
                    "audit log intact: {} entries checked",
                    verdict["entries_checked"]
                );
                Ok(())
            } else {
                bail!(
                    "audit log tampered with: entry {} is bad: {}",
                    verdict["first_bad_seq"],
                    verdict["problem"].as_str().unwrap_or("?")
                )
            }
        }
    }
}
