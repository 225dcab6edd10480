//! The `diagnose_bandwidth` prompt: it walks a model through finding what fills an interface,
//! with netmon's tools in the order they work best. Its `iface` argument completes from the
//! host's interface names (`completion/complete`). Pure but for the names, which the handler
//! looks up.

use super::tools::{GET_TRAFFIC, LIST_INTERFACES};
use crate::request::Target;
use rmcp::ErrorData as McpError;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptRequestParams, GetPromptResult,
    Prompt, PromptArgument, PromptMessage, Role,
};

pub const DIAGNOSE: &str = "diagnose_bandwidth";

pub fn all() -> Vec<Prompt> {
    vec![
        Prompt::new(
            DIAGNOSE,
            Some("Find out what is using an interface's bandwidth right now, and whose it is."),
            Some(vec![
                PromptArgument::new("iface")
                    .with_description("The interface to look at, e.g. eth0")
                    .with_required(true),
                PromptArgument::new("host")
                    .with_description(
                        "The host it is on: omit for this machine, or a name from netmon's config file",
                    )
                    .with_required(false),
            ]),
        )
        .with_title("Diagnose bandwidth on an interface"),
    ]
}

fn text_arg(req: &GetPromptRequestParams, name: &str) -> Option<String> {
    req.arguments
        .as_ref()?
        .get(name)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The prompt's messages for the given arguments.
pub fn get(req: &GetPromptRequestParams) -> Result<GetPromptResult, McpError> {
    if req.name != DIAGNOSE {
        return Err(McpError::invalid_params(
            format!("unknown prompt {:?}; netmon has {DIAGNOSE}", req.name),
            None,
        ));
    }
    let iface = text_arg(req, "iface").ok_or_else(|| {
        McpError::invalid_params(
            format!("{DIAGNOSE} needs iface (the interface to look at, e.g. eth0)"),
            None,
        )
    })?;
    let host = text_arg(req, "host");
    let on = host
        .as_deref()
        .map(|h| format!(" on host {h:?} (pass host: {h:?} to every call)"))
        .unwrap_or_else(|| " on this machine".into());
    let text = format!(
        "Find out what is using the bandwidth of interface {iface:?}{on}, using netmon's tools.\n\
         1. Call {LIST_INTERFACES} and check that {iface:?} exists and is up. If it does not, \
            say which interfaces there are and stop.\n\
         2. Call {GET_TRAFFIC} with iface {iface:?} and sample_seconds 10. Report the totals \
            (tx_rate_avg and rx_rate_avg in Mbps) and the top connections, by received bytes.\n\
         3. Call it again with sort \"tx\", and once with group_by \"host\", to see the heaviest \
            senders and the busiest host pairs. To look closer at one service or host, add a \
            filter such as \"tcp port 443\" or \"host 10.0.0.5\": total_stats then counts only \
            that, and interface_totals keeps the whole interface beside it.\n\
         4. If data.notes or total_stats.rx/tx show unattributed bytes or table-full events, say \
            that some traffic is in the totals but in no connection, and how much.\n\
         5. Summarise in a few lines: the interface's load, the connections or hosts that carry \
            most of it, and whether anything looks unusual (one host dominating, unexpected \
            ports, traffic on an interface that should be idle)."
    );
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(format!("Diagnose bandwidth on {iface}{on}")),
    )
}

/// What a `completion/complete` request asks for: interface names on `target` starting with
/// `prefix`. `None` for anything netmon does not complete.
pub struct Wanted {
    pub target: Target,
    pub prefix: String,
}

pub fn completion_wanted(req: &CompleteRequestParams) -> Option<Wanted> {
    if req.r#ref.as_prompt_name() != Some(DIAGNOSE) || req.argument.name != "iface" {
        return None;
    }
    let host = req
        .context
        .as_ref()
        .and_then(|c| c.get_argument("host"))
        .map(|h| h.to_string())
        .unwrap_or_default();
    Some(Wanted {
        target: Target::new(
            &host,
            Target::DEFAULT_PORT,
            Target::DEFAULT_USER.into(),
            None,
        ),
        prefix: req.argument.value.clone(),
    })
}

/// The names that start with `prefix`, sorted, at most what one answer may hold.
pub fn complete(prefix: &str, mut names: Vec<String>) -> CompleteResult {
    names.retain(|n| n.starts_with(prefix));
    names.sort();
    let total = names.len();
    names.truncate(CompletionInfo::MAX_VALUES);
    let shown = names.len();
    let info = CompletionInfo::with_pagination(names, Some(total as u32), shown < total)
        .unwrap_or_default();
    CompleteResult::new(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(args: serde_json::Value) -> GetPromptRequestParams {
        serde_json::from_value(json!({"name": DIAGNOSE, "arguments": args})).unwrap()
    }

    #[test]
    fn the_prompt_names_the_interface_the_host_and_the_tools() {
        let r = get(&req(json!({"iface": "eth0", "host": "web1"}))).unwrap();
        let text = serde_json::to_string(&r.messages).unwrap();
        for want in ["eth0", "web1", LIST_INTERFACES, GET_TRAFFIC, "group_by"] {
            assert!(text.contains(want), "{want} missing: {text}");
        }
        assert!(get(&req(json!({}))).is_err(), "iface is required");
        let other: GetPromptRequestParams =
            serde_json::from_value(json!({"name": "nope"})).unwrap();
        assert!(get(&other).is_err());
    }

    #[test]
    fn completion_filters_by_prefix() {
        let names = vec!["eth1".into(), "lo".into(), "eth0".into(), "veth9".into()];
        let r = complete("eth", names);
        assert_eq!(r.completion.values, ["eth0", "eth1"]);
        assert_eq!(r.completion.total, Some(2));
        let many: Vec<String> = (0..150).map(|i| format!("v{i}")).collect();
        let r = complete("v", many);
        assert_eq!(r.completion.values.len(), 100);
        assert_eq!(r.completion.has_more, Some(true));
    }
}
