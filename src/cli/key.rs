//! `key`: API keys for the gRPC interface (create, list, delete).

use contactbridge::api::auth::{self, Scope};
use contactbridge::store::Backend;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a key and print it once (only its hash is kept).
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// `tsps` (resolve and report calls) or `admin` (manage the tenant's users).
        #[arg(long, value_parser = Scope::parse)]
        scope: Scope,
        /// A note for `key list`, e.g. which phone system uses it.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List keys (ids, tenants, scopes; never secrets).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a key by its id (the 8 hex digits after `cb_`).
    Delete { id: String },
}

pub fn run(store: &dyn Backend, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create { tenant, scope, label } => {
            let key = auth::create_key(store, &tenant, scope, &label)?;
            errln!("created {scope} key {} for tenant {tenant:?}; it is shown once:", key.stored.id);
            outln!("{}", key.text);
        }
        Command::List { tenant } => {
            for k in store.keys(tenant.as_deref())? {
                outln!("{}\t{}\t{}\t{}\t{}", k.id, k.tenant, k.scope, k.created.format("%Y-%m-%d %H:%M"), k.label);
            }
        }
        Command::Delete { id } => {
            if !store.delete_key(&id)? {
                anyhow::bail!("no key with id {id:?}");
            }
            outln!("deleted key {id}");
        }
    }
    Ok(())
}
