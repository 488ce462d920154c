//! The device-side OMA DM 1.2 management tree (`OMA-TS-DM_TND-V1_2`,
//! `DM_TNDS-V1_2`, `DM_StdObj-V1_2`; digest `DM-PROTOCOL.md` §4, §6, §9,
//! §12). Pure: no I/O, no clock (time is passed in), no randomness.
//!
//! ```text
//!   session engine ──Command──▶ Tree::apply(cmd, ServerCtx{server_id, msg_ref, now}, hooks)
//!        ▲                          │  URI → node → AccessType (405) → ACL (425) → format (415)
//!        └──── Vec<Reply> ◀─────────┤  Atomic: journal + rollback; Sequence: in order
//!              (Status, Results)    └─▶ TreeHooks: exec / check_change / changed / alert
//!                                         (SCOMO, FUMO, the engine's UI)
//!   agent / MO clients ──▶ device API: ensure_interior, set_leaf, set_acl, value, ... (no ACL)
//!   persistence ◀──▶ serde (Tree: Serialize + Deserialize)
//! ```
//!
//! Choices on points the standard leaves open (UNCONFIRMED in the digest):
//! * Status codes: malformed URIs, ACL text, node names and TNDS documents
//!   are 400; a value invalid for its format (`abc` as `int`, bad base64) is
//!   415; a missing Item/Target is 412. Check order: 400 → 414 → 406 →
//!   404/418 → 405 → 425 → 415/413 → 420 → hook veto.
//! * 213 and Meta `Size` (large objects) are the session engine's: the tree
//!   only sees complete values.
//! * Multi-item commands get one Status per Item (TargetRef/SourceRef =
//!   the Item's URIs); each Item is all-or-nothing on its own.
//! * Inside a registered MO schema, a server Add of a node matching no
//!   pattern is 405 ([`schema`]); the schema fixes each node's format (415
//!   on mismatch), and a node without Meta Format gets the schema's.
//! * Replace without Meta Format keeps the leaf's current format and Type.
//! * AccessType is checked before the ACL; reading a property (`?prop=`)
//!   needs the ACL's Get only, not the AccessType's.
//! * Atomic containing Get, Exec, Atomic or Sequence is refused as a whole
//!   (500, offending members 500, others 215, nothing run). On failure:
//!   Atomic 507, done members 216, the failing one its code, the rest 215.
//!   A Sequence inside a Sequence is 500 (the SyncML DTD has no such
//!   nesting); an Atomic inside a Sequence is accepted.
//! * An Alert answered with anything but 200/202 aborts a Sequence (rest
//!   215) and fails an Atomic; [`TreeHooks::alert`] (the engine) decides
//!   the reply, default 406. Other failures do not stop a Sequence.
//! * `?list=Struct`/`StructData`/`TNDS` leave out nodes the server may not
//!   Get, with their sub-trees; values only for nodes whose AccessType has
//!   Get. A plain `?list=TNDS` carries every property and the values.
//! * TNDS Add/Replace: the Target is where the top nodes go (a missing
//!   Target named like the single top node is taken as that node). A
//!   document ACL is allowed where Replace `?prop=ACL` would be, and is
//!   applied after the node's sub-tree is built. TNDS Replace creates
//!   missing nodes (Add rights) and deletes children the document omits
//!   (Delete rights); top-level siblings are left alone.
//! * Deleting a node whose sub-tree holds a permanent node is 405.
//! * A server id removed from the ACLs (`Tree::remove_server_id`) may leave
//!   a non-root ACL empty, which then inherits (as the standard says).
//! * Adding, deleting or renaming a child bumps the parent's VerNo/TStamp.

#![warn(missing_docs)]

pub mod access;
pub mod acl;
pub mod apply;
mod bytes;
pub mod error;
pub mod format;
pub mod hooks;
pub mod node;
pub mod schema;
pub mod stdobj;
pub mod time;
pub mod tnds;
pub mod tree;
pub mod uri;

pub use access::AccessType;
pub use acl::{Acl, AclCommand};
pub use apply::{Reply, ServerCtx};
pub use error::TreeError;
pub use format::Format;
pub use hooks::{
    AlertReply, Change, ChangeEvent, ChangeKind, ExecRequest, HookRouter, NoHooks, TreeHooks,
};
pub use node::Node;
pub use schema::{MoSchema, NodeSpec, SchemaMatch};
pub use tnds::{TndsDoc, TndsNode, TNDS_XML_TYPE};
pub use tree::{Tree, TreeConfig};
pub use uri::{ListKind, Property, Query, Target, TndsField, TndsFields, ToUri, Uri, UriLimits};
