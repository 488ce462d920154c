//! Reading `./SCOMO/Inventory` (`SCOMO.md` §2): one
//! `Get ./SCOMO/Inventory?list=StructData` (every node with its value, DM
//! 1.2 TNDS), or, for devices that refuse `?list=`, Gets of the two list
//! nodes (their children's names) and then of each entry's leaves.
//!
//! The digest's issue text speaks of `?list=Struct`; Struct carries no leaf
//! values, so the versions and states we need come from `StructData`.
//!
//! Batch owners say which stage a read is in and for whom it is done:
//! `inv1:<purpose>`, `inv2:<purpose>`, `inv3:<purpose>`, where the purpose
//! is `job:<id>` or `dev`.

use std::collections::BTreeMap;

use omadm_wire::model::{Command, Data, Item, ItemCommand, Location};
use omadm_wire::StatusCode;
use scomo::mo::node;

use crate::store::{Batch, InventoryEntry, InventoryKind};

/// Leaves read from each Delivered entry in a recursive read.
const DELIVERED_LEAVES: &[&str] = &[
    node::PKG_ID,
    node::NAME,
    node::STATE,
    node::STATUS,
    node::ENV_TYPE,
];
/// Leaves read from each Deployed entry in a recursive read.
const DEPLOYED_LEAVES: &[&str] = &[
    node::ID,
    node::NAME,
    node::VERSION,
    node::STATE,
    node::STATUS,
    node::PKG_ID_REF,
];

/// The stage of a read a batch owner names, and its purpose.
pub(crate) fn parse_owner(owner: &str) -> Option<(u8, &str)> {
    let rest = owner.strip_prefix("inv")?;
    let (stage, purpose) = rest.split_once(':')?;
    Some((stage.parse().ok()?, purpose))
}

/// The owner of stage `stage` of a read for `purpose`.
pub(crate) fn owner(stage: u8, purpose: &str) -> String {
    format!("inv{stage}:{purpose}")
}

fn get(uri: String) -> Command {
    Command::Get(ItemCommand {
        items: vec![Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }],
        ..ItemCommand::default()
    })
}

/// Stage 1: `Get <root>/Inventory?list=StructData`.
pub(crate) fn stage1(root: &str) -> Vec<Command> {
    vec![get(format!("{root}/{}?list=StructData", node::INVENTORY))]
}

/// Stage 2: the children of the two lists.
pub(crate) fn stage2(root: &str) -> Vec<Command> {
    vec![
        get(format!("{root}/{}/{}", node::INVENTORY, node::DELIVERED)),
        get(format!("{root}/{}/{}", node::INVENTORY, node::DEPLOYED)),
    ]
}

/// Whether stage 1 answered (its Get, the last command, got 200).
pub(crate) fn stage1_answered(batch: &Batch) -> bool {
    let last = batch.command_count.saturating_sub(1);
    batch
        .outcomes
        .iter()
        .any(|o| o.index == last && o.status == StatusCode::OK)
}

/// Stage 3: every leaf of every entry stage 2 listed; `None` when there is
/// no entry (the inventory is empty).
pub(crate) fn stage3(root: &str, batch: &Batch) -> Option<Vec<Command>> {
    let mut cmds = Vec::new();
    for r in batch.outcomes.iter().flat_map(|o| o.results.iter()) {
        for item in &r.items {
            let uri = item_uri(item, r).unwrap_or_default();
            let Some(data) = item.data.as_ref().and_then(Data::as_str) else {
                continue;
            };
            let (kind, leaves) = if uri.ends_with(&format!("/{}", node::DELIVERED)) {
                (node::DELIVERED, DELIVERED_LEAVES)
            } else if uri.ends_with(&format!("/{}", node::DEPLOYED)) {
                (node::DEPLOYED, DEPLOYED_LEAVES)
            } else {
                continue;
            };
            for child in data.split('/').map(str::trim).filter(|c| !c.is_empty()) {
                for leaf in leaves {
                    cmds.push(get(format!(
                        "{root}/{}/{kind}/{child}/{leaf}",
                        node::INVENTORY
                    )));
                }
            }
        }
    }
    (!cmds.is_empty()).then_some(cmds)
}

fn item_uri(item: &Item, r: &omadm_wire::model::Results) -> Option<String> {
    item.source
        .as_ref()
        .map(|s| s.loc_uri.clone())
        .or_else(|| r.source_ref.clone())
        .or_else(|| r.target_ref.clone())
}

/// The entries found in the results of a stage 1 or stage 3 batch.
pub(crate) fn parse(batch: &Batch) -> Vec<InventoryEntry> {
    let mut entries: BTreeMap<(u8, String), InventoryEntry> = BTreeMap::new();
    for r in batch.outcomes.iter().flat_map(|o| o.results.iter()) {
        for item in &r.items {
            let Some(uri) = item_uri(item, r) else {
                continue;
            };
            let Some((_, rest)) = uri.split_once(&format!("/{}/", node::INVENTORY)) else {
                continue;
            };
            let mut parts = rest.splitn(3, '/');
            let (Some(list), Some(entry)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (kind, order) = match list {
                node::DELIVERED => (InventoryKind::Delivered, 0),
                node::DEPLOYED => (InventoryKind::Deployed, 1),
                _ => continue,
            };
            if entry.is_empty() {
                continue;
            }
            let e = entries
                .entry((order, entry.to_owned()))
                .or_insert_with(|| InventoryEntry {
                    kind: Some(kind),
                    entry: entry.to_owned(),
                    ..InventoryEntry::default()
                });
            let Some(leaf) = parts.next() else { continue };
            let value = item
                .data
                .as_ref()
                .and_then(Data::as_str)
                .map(|v| v.trim().to_owned());
            let number = || value.as_deref().and_then(|v| v.parse::<u16>().ok());
            match (kind, leaf) {
                (InventoryKind::Delivered, node::PKG_ID) | (InventoryKind::Deployed, node::ID) => {
                    e.item_id = value
                }
                (_, node::NAME) => e.name = value,
                (InventoryKind::Deployed, node::VERSION) => e.version = value,
                (_, node::STATE) => e.state = number(),
                (_, node::STATUS) => e.status = number(),
                (InventoryKind::Deployed, node::PKG_ID_REF) => e.pkg_id_ref = value,
                (InventoryKind::Delivered, node::ENV_TYPE) => e.env_type = value,
                _ => {}
            }
        }
    }
    entries.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BatchId, BatchState, CommandOutcome, Timestamp};
    use omadm_wire::model::Results;

    fn batch(items: Vec<(&str, Option<&str>)>) -> Batch {
        Batch {
            id: BatchId(1),
            device_id: "d".into(),
            owner: owner(1, "dev"),
            commands: stage1("./SCOMO"),
            command_count: 1,
            idempotent: true,
            state: BatchState::Completed,
            session: None,
            attempts: 1,
            created_at: Timestamp::default(),
            claimed_at: None,
            sent_at: None,
            finished_at: None,
            outcomes: vec![CommandOutcome {
                index: 0,
                status: StatusCode::OK,
                results: vec![Results {
                    items: items
                        .into_iter()
                        .map(|(u, d)| Item {
                            source: Some(Location::uri(u)),
                            data: d.map(|d| Data::Text(d.into())),
                            ..Item::default()
                        })
                        .collect(),
                    ..Results::default()
                }],
                recorded_at: Timestamp::default(),
            }],
        }
    }

    #[test]
    fn struct_data_parses() {
        let b = batch(vec![
            ("./SCOMO/Inventory", None),
            ("./SCOMO/Inventory/Delivered", None),
            ("./SCOMO/Inventory/Delivered/p1", None),
            ("./SCOMO/Inventory/Delivered/p1/PkgID", Some("pkg-1")),
            ("./SCOMO/Inventory/Delivered/p1/State", Some("10")),
            ("./SCOMO/Inventory/Deployed/hello", None),
            ("./SCOMO/Inventory/Deployed/hello/ID", Some("hello")),
            ("./SCOMO/Inventory/Deployed/hello/Version", Some("1.0")),
            ("./SCOMO/Inventory/Deployed/hello/State", Some("20")),
            (
                "./SCOMO/Inventory/Deployed/hello/Operations/Activate",
                Some(""),
            ),
        ]);
        assert!(stage1_answered(&b));
        let e = parse(&b);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].kind, Some(InventoryKind::Delivered));
        assert_eq!(e[0].item_id.as_deref(), Some("pkg-1"));
        assert_eq!(e[0].state, Some(10));
        assert_eq!(e[1].item_id.as_deref(), Some("hello"));
        assert_eq!(e[1].version.as_deref(), Some("1.0"));
        assert_eq!(e[1].state, Some(20));
    }

    #[test]
    fn stage3_reads_every_listed_entry() {
        let b = batch(vec![
            ("./SCOMO/Inventory/Delivered", Some("")),
            ("./SCOMO/Inventory/Deployed", Some("a/b")),
        ]);
        let cmds = stage3("./SCOMO", &b).expect("entries");
        assert_eq!(cmds.len(), 2 * DEPLOYED_LEAVES.len());
        let empty = batch(vec![("./SCOMO/Inventory/Deployed", Some(""))]);
        assert!(stage3("./SCOMO", &empty).is_none());
    }

    #[test]
    fn owners() {
        assert_eq!(parse_owner(&owner(2, "job:5")), Some((2, "job:5")));
        assert_eq!(parse_owner("job:5"), None);
    }
}
