//! `copkg site`: loads the site script and shows which hooks it overrides.

use super::{Context, Result, out};

/// Reports the site script's hooks, or its error with file and line.
pub fn run(ctx: &Context) -> Result {
    let host = ctx.host()?;
    let overrides = |hook: &str| host.overridden().iter().any(|h| h == hook);
    if overrides("service_account") && overrides("service_settings") {
        ctx.progress(
            "note: the site defines both service_account and service_settings: \
             service_settings decides the account, service_account is not called",
        );
    }
    let site = host.site().map_or_else(
        || "none (built-in policy only)".to_owned(),
        |p| p.display().to_string(),
    );
    if ctx.settings.json {
        let hooks: serde_json::Map<String, serde_json::Value> = host
            .hook_sources()
            .into_iter()
            .map(|(hook, site)| {
                (
                    hook.to_owned(),
                    (if site { "site" } else { "default" }).into(),
                )
            })
            .collect();
        return Ok(out(
            &serde_json::json!({"site": host.site(), "hooks": hooks, "changed": false}).to_string(),
        )?);
    }
    out(&format!("site script: {site}"))?;
    for (hook, overridden) in host.hook_sources() {
        out(&format!(
            "{hook}\t{}",
            if overridden { "site" } else { "default" }
        ))?;
    }
    Ok(())
}
