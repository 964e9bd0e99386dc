//! The `catalogd` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use sqlx::PgPool;

use crate::accounts::email::{Email, parse_name};
use crate::accounts::{users, workspaces};
use crate::app::{Application, Stopping, shutdown_signal};
use crate::audit_log::{self, Entry};
use crate::auth::Role;
use crate::auth::password::{self, Password};
use crate::config::Settings;
use crate::crypto::{self, Keyring};
use crate::secrets::{self, KeyMaterial};
use crate::state::AppState;
use crate::{bench, db, demo, jobs, schedules, telemetry};

#[derive(Parser)]
#[command(
    name = "catalogd",
    version,
    about = "Keeps Magento 2 product catalogs in good shape."
)]
pub struct Cli {
    /// TOML file with the same structure as config/default.toml.
    #[arg(long, global = true, env = "CATALOGD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (creates and migrates the database first).
    Serve {
        /// Address to listen on (overrides `listen` / CATALOGD_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run only job workers (scale-out): any number share the queue in PostgreSQL.
    Worker,
    /// Start a simulated Magento store, connect it through the integration handshake, sync it,
    /// and serve the API.
    Demo {
        /// Products in the simulated catalog.
        #[arg(long, default_value_t = 500)]
        products: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Exit once the pipeline has run instead of serving.
        #[arg(long)]
        exit: bool,
    },
    /// Create the database if needed and apply migrations, then exit.
    Migrate,
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Benchmarks (release builds): `catalogd bench sync --products 100000`,
    /// `catalogd bench enrich --products 1000 --rpm 600`, `catalogd bench push --products 10000`.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Run the retention sweep now: purge old job logs and request records, aggregate old
    /// usage, forget disconnected stores' connection details, delete workspaces of deleted
    /// accounts.
    Retention {
        #[arg(long)]
        json: bool,
    },
    /// Replace the session signing key (in the data directory); tokens signed with the old key
    /// keep working for `auth.previous_jwt_secret_grace_secs`.
    RotateJwtKey {
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every stored secret under a new master key.
    RotateKey {
        /// The new key, base64 of 32 bytes (default: a fresh random key).
        #[arg(long, env = "CATALOGD_NEW_MASTER_KEY", hide_env_values = true)]
        new_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Enrichment of a synced catalog through a provider fake enforcing a requests/minute limit.
    Enrich {
        #[arg(long, default_value_t = 1000)]
        products: usize,
        /// The provider's limit, requests per minute.
        #[arg(long, default_value_t = 600)]
        rpm: u32,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: u32,
        /// The fake provider's answer time, milliseconds.
        #[arg(long, default_value_t = 300)]
        latency_ms: u64,
        /// Keep the benchmark's database afterwards.
        #[arg(long)]
        keep_database: bool,
    },
    /// A change to one field of every product (default scope and one store view) pushed one
    /// at a time as a peer would, by catalogd's push, and by its bulk push.
    Push {
        #[arg(long, default_value_t = 10_000)]
        products: usize,
        /// Products the one-at-a-time baseline writes (its rate does not depend on the count).
        #[arg(long, default_value_t = 200)]
        baseline_products: usize,
        /// The store's `max_concurrency`.
        #[arg(long, default_value_t = 8)]
        concurrency: u32,
        /// The store's `requests_per_second`.
        #[arg(long, default_value_t = 200)]
        requests_per_second: u32,
        /// How long the simulated store takes to answer each request, milliseconds.
        #[arg(long, default_value_t = 100)]
        store_latency_ms: u64,
        /// Which ways to run, comma-separated (the ratios need the baseline).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "baseline,push,bulk"
        )]
        ways: Vec<bench::PushWay>,
        /// Keep the benchmark's database afterwards.
        #[arg(long)]
        keep_database: bool,
    },
    /// Full sync of a simulated catalog against a raw download of the same pages.
    Sync {
        #[arg(long, default_value_t = 100_000)]
        products: usize,
        /// Concurrent requests to the store (the same for the raw download).
        #[arg(long, default_value_t = 8)]
        concurrency: u32,
        #[arg(long, default_value_t = 1000)]
        requests_per_second: u32,
        /// How long the simulated store takes to answer each request, milliseconds (0: as
        /// fast as it can, on the same cores as catalogd and PostgreSQL).
        #[arg(long, default_value_t = 0)]
        store_latency_ms: u64,
        /// Keep the benchmark's database afterwards.
        #[arg(long)]
        keep_database: bool,
        /// Then load the product API for this many seconds (0: skip).
        #[arg(long, default_value_t = 0)]
        api_load_secs: u32,
        /// Requests per second of that load.
        #[arg(long, default_value_t = 200)]
        api_load_rate: u32,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account with its first workspace.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// The password; better given through CATALOGD_PASSWORD than on the command line.
        #[arg(long, env = "CATALOGD_PASSWORD", hide_env_values = true)]
        password: String,
        /// Name of the first workspace (default: "<name>'s workspace").
        #[arg(long)]
        workspace: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace owned by an existing user.
    Create {
        #[arg(long)]
        name: String,
        /// Email of the owner.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key for a workspace; the key is printed once.
    Create {
        /// Workspace id.
        #[arg(long)]
        workspace: uuid::Uuid,
        #[arg(long)]
        name: String,
        /// owner, admin, editor, reviewer or viewer.
        #[arg(long, default_value = "editor")]
        role: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref())?;
    // The demo prints its own steps; its log goes to a file it names.
    if !matches!(cli.command, Command::Demo { .. }) {
        telemetry::init(settings.log_format, &settings.log_level);
    }
    match cli.command {
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                settings.listen = addr;
            }
            let app = Application::build(settings).await?;
            tracing::info!(address = %app.local_addr(), "catalogd serving");
            let stopping = Stopping::on_signal();
            let workers = app
                .state()
                .settings
                .jobs
                .workers_in_serve
                .then(|| tokio::spawn(jobs::runner::run(app.state().clone(), stopping.wait())));
            let scheduler = tokio::spawn(schedules::run_scheduler(
                app.state().clone(),
                stopping.wait(),
            ));
            app.run(stopping.wait()).await?;
            scheduler.await?;
            if let Some(workers) = workers {
                workers.await??;
            }
        }
        Command::Demo {
            products,
            seed,
            listen,
            exit,
        } => {
            if let Some(addr) = listen {
                settings.listen = addr;
            }
            demo::run(
                settings,
                demo::DemoOptions {
                    products,
                    seed,
                    exit,
                },
            )
            .await?;
        }
        Command::Bench {
            command:
                BenchCommand::Enrich {
                    products,
                    rpm,
                    concurrency,
                    latency_ms,
                    keep_database,
                },
        } => {
            bench::enrich(
                settings,
                bench::EnrichBenchOptions {
                    products,
                    rpm,
                    concurrency,
                    latency_ms,
                    keep_database,
                },
            )
            .await?;
        }
        Command::Bench {
            command:
                BenchCommand::Push {
                    products,
                    baseline_products,
                    concurrency,
                    requests_per_second,
                    store_latency_ms,
                    ways,
                    keep_database,
                },
        } => {
            bench::push(
                settings,
                bench::PushBenchOptions {
                    products,
                    baseline_products,
                    concurrency,
                    requests_per_second,
                    store_latency_ms,
                    ways,
                    keep_database,
                },
            )
            .await?;
        }
        Command::Bench {
            command:
                BenchCommand::Sync {
                    products,
                    concurrency,
                    requests_per_second,
                    store_latency_ms,
                    keep_database,
                    api_load_secs,
                    api_load_rate,
                },
        } => {
            bench::sync(
                settings,
                bench::BenchOptions {
                    products,
                    concurrency,
                    requests_per_second,
                    store_latency_ms,
                    keep_database,
                    api_load_secs,
                    api_load_rate,
                },
            )
            .await?;
        }
        Command::Worker => {
            let keys = KeyMaterial::load_or_generate(&settings)?;
            let db = db::connect_and_migrate(&settings.database).await?;
            let state = AppState::new(db, settings, keys)?;
            tracing::info!("catalogd worker running");
            jobs::runner::run(state, shutdown_signal()).await?;
        }
        Command::Migrate => {
            db::connect_and_migrate(&settings.database).await?;
            tracing::info!("database is migrated");
        }
        Command::User { command } => {
            admin(&settings, |db| {
                Box::pin(user_command(db, &settings, command))
            })
            .await?
        }
        Command::Workspace { command } => {
            admin(&settings, |db| Box::pin(workspace_command(db, command))).await?
        }
        Command::ApiKey { command } => {
            admin(&settings, |db| Box::pin(api_key_command(db, command))).await?
        }
        Command::RotateKey { new_key, json } => rotate_key(&settings, new_key, json).await?,
        Command::Retention { json } => {
            let keys = KeyMaterial::load_or_generate(&settings)?;
            let db = db::connect_and_migrate(&settings.database).await?;
            let state = AppState::new(db, settings, keys)?;
            let report = crate::retention::sweep(&state).await?;
            let human = format!(
                "retention sweep: {} job log lines, {} sessions, {} refresh tokens, {} audit addresses, {} usage days aggregated, {} store connections purged, {} workspaces deleted ({} objects)",
                report.job_log_lines,
                report.sessions,
                report.refresh_tokens,
                report.audit_addresses_forgotten,
                report.usage_days_aggregated,
                report.stores_purged,
                report.workspaces_deleted,
                report.objects_deleted
            );
            print(json, serde_json::to_value(&report)?, human);
        }
        Command::RotateJwtKey { json } => rotate_jwt_key(&settings, json)?,
    }
    Ok(())
}

type AdminFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

async fn admin<'a>(
    settings: &Settings,
    f: impl FnOnce(PgPool) -> AdminFuture<'a>,
) -> anyhow::Result<()> {
    let db = db::connect_and_migrate(&settings.database).await?;
    f(db).await
}

fn print(json_output: bool, value: serde_json::Value, human: String) {
    if json_output {
        println!("{value}");
    } else {
        println!("{human}");
    }
}

async fn user_command(db: PgPool, settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Create {
        email,
        name,
        password,
        workspace,
        json,
    } = command;
    let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = parse_name("name", &name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let workspace_name = workspace.unwrap_or_else(|| format!("{name}'s workspace"));
    let workspace_name =
        parse_name("workspace", &workspace_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let password = Password::parse(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = password::hash(password, settings.auth.bcrypt_cost).await?;
    let mut tx = db.begin().await?;
    let user = users::create(&mut tx, &email, &name, &hash)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ws = workspaces::create(&mut tx, &workspace_name, user.id).await?;
    let mut entry = Entry::new("user.registered").target("user", user.id);
    entry.workspace_id = Some(ws.id);
    entry.actor_user_id = Some(user.id);
    audit_log::record(&mut *tx, entry).await?;
    tx.commit().await?;
    print(
        json,
        json!({"user": {"id": user.id, "email": user.email, "name": user.name}, "workspace": {"id": ws.id, "name": ws.name}}),
        format!(
            "created user {} ({}) with workspace {} ({})",
            user.email, user.id, ws.name, ws.id
        ),
    );
    Ok(())
}

async fn workspace_command(db: PgPool, command: WorkspaceCommand) -> anyhow::Result<()> {
    let WorkspaceCommand::Create { name, owner, json } = command;
    let name = parse_name("name", &name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let email = Email::parse(&owner).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = db.begin().await?;
    let Some(owner_id) = users::id_by_email(&mut tx, &email).await? else {
        bail!("no user with email {}", email.as_str());
    };
    let ws = workspaces::create(&mut tx, &name, owner_id).await?;
    let mut entry = Entry::new("workspace.created").target("workspace", ws.id);
    entry.workspace_id = Some(ws.id);
    entry.actor_user_id = Some(owner_id);
    audit_log::record(&mut *tx, entry).await?;
    tx.commit().await?;
    print(
        json,
        json!({"id": ws.id, "name": ws.name, "owner": owner_id}),
        format!("created workspace {} ({})", ws.name, ws.id),
    );
    Ok(())
}

async fn api_key_command(db: PgPool, command: ApiKeyCommand) -> anyhow::Result<()> {
    let ApiKeyCommand::Create {
        workspace,
        name,
        role,
        json,
    } = command;
    let role: Role = serde_json::from_value(json!(role))
        .context("role must be one of owner, admin, editor, reviewer, viewer")?;
    let name = parse_name("name", &name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = db.begin().await?;
    if workspaces::get(&db, workspace).await?.is_none() {
        bail!("no workspace with id {workspace}");
    }
    let (info, key) = workspaces::create_api_key(&mut tx, workspace, &name, role, None).await?;
    let mut entry = Entry::new("api_key.created")
        .target("api_key", info.id)
        .details(
            json!({"name": info.name, "prefix": info.prefix, "role": info.role, "via": "cli"}),
        );
    entry.workspace_id = Some(workspace);
    audit_log::record(&mut *tx, entry).await?;
    tx.commit().await?;
    print(
        json,
        json!({"id": info.id, "key": key, "prefix": info.prefix, "role": info.role, "workspace_id": workspace}),
        format!(
            "created API key {} ({}): {key}\nThis is the only time the key is shown.",
            info.name, info.id
        ),
    );
    Ok(())
}

async fn rotate_key(
    settings: &Settings,
    new_key: Option<String>,
    json_output: bool,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let keys = KeyMaterial::load_or_generate(settings)?;
    let old = Keyring::new(&keys.master_key, &keys.previous_master_keys);
    let new_key = match new_key {
        Some(encoded) => secrets::parse_master_key("new_key", &encoded)?,
        None => {
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            secrecy::SecretBox::new(Box::new(bytes))
        }
    };
    if crypto::key_id(new_key.expose_secret()) == crypto::key_id(keys.master_key.expose_secret()) {
        bail!("the new key is the current key");
    }
    // The old key stays readable so values sealed by processes not yet restarted still open.
    let mut retired = vec![secrecy::SecretBox::new(Box::new(
        *keys.master_key.expose_secret(),
    ))];
    retired.extend(
        keys.previous_master_keys
            .iter()
            .map(|k| secrecy::SecretBox::new(Box::new(*k.expose_secret()))),
    );
    let new = Keyring::new(&new_key, &retired);
    let db = db::connect_and_migrate(&settings.database).await?;
    let count = crypto::reseal_all(&db, &old, &new).await?;
    let old_encoded = secrets::encode_key(keys.master_key.expose_secret());
    let new_encoded = secrets::encode_key(new_key.expose_secret());
    let file_based = settings.master_key.expose_secret().is_empty();
    if file_based {
        let retired_path = settings.data_dir.join(secrets::RETIRED_KEYS_FILE);
        let mut lines = std::fs::read_to_string(&retired_path).unwrap_or_default();
        lines.push_str(&old_encoded);
        lines.push('\n');
        secrets::write_private(&retired_path, &lines)?;
        secrets::write_private(
            &settings.data_dir.join(secrets::MASTER_KEY_FILE),
            &new_encoded,
        )?;
    }
    let human = if file_based {
        format!(
            "re-encrypted {count} secrets under key {}; {} now holds the new key and the old one is kept in {} until every process has restarted",
            new.current_id(),
            secrets::MASTER_KEY_FILE,
            secrets::RETIRED_KEYS_FILE
        )
    } else {
        format!(
            "re-encrypted {count} secrets under key {}.\nSet CATALOGD_MASTER_KEY={new_encoded}\nand CATALOGD_PREVIOUS_MASTER_KEYS={old_encoded} until every process has restarted.",
            new.current_id()
        )
    };
    let mut value =
        json!({"resealed": count, "key_id": new.current_id(), "key_file_updated": file_based});
    if !file_based {
        value["new_master_key"] = json!(new_encoded);
    }
    print(json_output, value, human);
    Ok(())
}

fn rotate_jwt_key(settings: &Settings, json_output: bool) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let grace = settings.auth.previous_jwt_secret_grace_secs;
    if !settings.jwt_secret.expose_secret().is_empty() {
        bail!(
            "jwt_secret is set in the configuration: set the new key in CATALOGD_JWT_SECRET and the old one in CATALOGD_PREVIOUS_JWT_SECRETS, restart, and remove the old one after {grace} s"
        );
    }
    secrets::rotate_jwt_key_file(settings)?;
    let keys = KeyMaterial::load_or_generate(settings)?;
    let key_id = crate::auth::tokens::key_id(keys.jwt_secret.expose_secret());
    print(
        json_output,
        json!({"key_id": key_id, "grace_secs": grace}),
        format!(
            "new signing key {key_id} in {}; restart every process. Tokens signed with the old key work for {grace} s more.",
            secrets::JWT_KEY_FILE
        ),
    );
    Ok(())
}
