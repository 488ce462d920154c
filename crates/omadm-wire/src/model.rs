//! The SyncML DM 1.2 message model (`OMA-TS-DM_RepPro-V1_2` §6, digest §2 and §4).
//!
//! Parse, don't validate: a decoded [`SyncMl`] is already well formed. Field
//! names follow the standard's element names in snake_case. Elements that DM
//! does not use (Map, Sync, Search, ...) are skipped by the decoders.
//!
//! With the `serde` feature (servers store queued commands and results), a
//! field at its default (`None`, empty, `false`, CmdID 0) is left out of the
//! serialized form and reads back as that default; the longer form with every
//! field written out reads too.

use crate::codes::{AlertCode, StatusCode};

/// One SyncML DM message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SyncMl {
    /// `<SyncHdr>`.
    pub header: SyncHdr,
    /// `<SyncBody>`.
    pub body: SyncBody,
}

/// `<SyncHdr>`: who, which session, which message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SyncHdr {
    /// `<VerDTD>`, `1.2` for DM 1.2.
    pub ver_dtd: String,
    /// `<VerProto>`, `DM/1.2`.
    pub ver_proto: String,
    /// `<SessionID>`: opaque (some clients write it in hex, `QUIRKS.md`).
    pub session_id: String,
    /// `<MsgID>`: per-sender message counter, from 1.
    pub msg_id: u32,
    /// `<Target>`: the recipient.
    pub target: Location,
    /// `<Source>`: the sender.
    pub source: Location,
    /// `<RespURI>`: where the client sends its next message.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub resp_uri: Option<String>,
    /// `<NoResp/>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub no_resp: bool,
    /// `<Cred>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cred: Option<Cred>,
    /// `<Meta>` (MaxMsgSize, MaxObjSize).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub meta: Option<Meta>,
}

impl SyncHdr {
    /// A DM 1.2 header with the fixed version elements filled in.
    pub fn new(
        session_id: impl Into<String>,
        msg_id: u32,
        target: Location,
        source: Location,
    ) -> Self {
        SyncHdr {
            ver_dtd: VER_DTD.to_owned(),
            ver_proto: VER_PROTO.to_owned(),
            session_id: session_id.into(),
            msg_id,
            target,
            source,
            resp_uri: None,
            no_resp: false,
            cred: None,
            meta: None,
        }
    }
}

/// `VerDTD` of DM 1.2 messages.
pub const VER_DTD: &str = "1.2";
/// `VerProto` of DM 1.2 messages.
pub const VER_PROTO: &str = "DM/1.2";

/// `<SyncBody>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SyncBody {
    /// The commands, in message order.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub commands: Vec<Command>,
    /// `<Final/>`: last message of a package.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub is_final: bool,
}

/// `<Target>` / `<Source>` (and the LocURI-only `SourceParent`/`TargetParent`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Location {
    /// `<LocURI>`.
    pub loc_uri: String,
    /// `<LocName>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub loc_name: Option<String>,
}

impl Location {
    /// A location with only a LocURI.
    pub fn uri(loc_uri: impl Into<String>) -> Location {
        Location {
            loc_uri: loc_uri.into(),
            loc_name: None,
        }
    }
}

/// A SyncBody command, or a command nested in Atomic/Sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Command {
    /// `<Add>`.
    Add(ItemCommand),
    /// `<Alert>`.
    Alert(Alert),
    /// `<Atomic>`.
    Atomic(Container),
    /// `<Copy>`.
    Copy(ItemCommand),
    /// `<Delete>`.
    Delete(ItemCommand),
    /// `<Exec>`.
    Exec(Exec),
    /// `<Get>`.
    Get(ItemCommand),
    /// `<Replace>`.
    Replace(ItemCommand),
    /// `<Sequence>`.
    Sequence(Container),
    /// `<Status>`.
    Status(Status),
    /// `<Results>`.
    Results(Results),
}

impl Command {
    /// The element name, as a Status's `<Cmd>` names it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Add(_) => "Add",
            Command::Alert(_) => "Alert",
            Command::Atomic(_) => "Atomic",
            Command::Copy(_) => "Copy",
            Command::Delete(_) => "Delete",
            Command::Exec(_) => "Exec",
            Command::Get(_) => "Get",
            Command::Replace(_) => "Replace",
            Command::Sequence(_) => "Sequence",
            Command::Status(_) => "Status",
            Command::Results(_) => "Results",
        }
    }

    /// The command's `<CmdID>`.
    pub fn cmd_id(&self) -> u32 {
        match self {
            Command::Add(c)
            | Command::Copy(c)
            | Command::Delete(c)
            | Command::Get(c)
            | Command::Replace(c) => c.cmd_id,
            Command::Alert(c) => c.cmd_id,
            Command::Atomic(c) | Command::Sequence(c) => c.cmd_id,
            Command::Exec(c) => c.cmd_id,
            Command::Status(c) => c.cmd_id,
            Command::Results(c) => c.cmd_id,
        }
    }

    /// Sets the command's `<CmdID>` (engines number commands when they send).
    pub fn set_cmd_id(&mut self, id: u32) {
        match self {
            Command::Add(c)
            | Command::Copy(c)
            | Command::Delete(c)
            | Command::Get(c)
            | Command::Replace(c) => c.cmd_id = id,
            Command::Alert(c) => c.cmd_id = id,
            Command::Atomic(c) | Command::Sequence(c) => c.cmd_id = id,
            Command::Exec(c) => c.cmd_id = id,
            Command::Status(c) => c.cmd_id = id,
            Command::Results(c) => c.cmd_id = id,
        }
    }

    /// Whether the sender asked for no Status (`<NoResp/>`).
    pub fn no_resp(&self) -> bool {
        match self {
            Command::Add(c)
            | Command::Copy(c)
            | Command::Delete(c)
            | Command::Get(c)
            | Command::Replace(c) => c.no_resp,
            Command::Alert(c) => c.no_resp,
            Command::Atomic(c) | Command::Sequence(c) => c.no_resp,
            Command::Exec(c) => c.no_resp,
            Command::Status(_) | Command::Results(_) => false,
        }
    }
}

/// Add, Copy, Delete, Get and Replace: a command over items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ItemCommand {
    /// `<CmdID>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub cmd_id: u32,
    /// `<NoResp/>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub no_resp: bool,
    /// `<Archive/>` (Delete only; unused by DM).
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub archive: bool,
    /// `<SftDel/>` (Delete only; unused by DM).
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub sft_del: bool,
    /// `<Lang>` (Get only; unused by DM).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub lang: Option<String>,
    /// `<Cred>` (DM keeps credentials in SyncHdr).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cred: Option<Cred>,
    /// `<Meta>`, applying to every item that has none of its own.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub meta: Option<Meta>,
    /// `<Item>`s.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub items: Vec<Item>,
}

/// `<Alert>`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Alert {
    /// `<CmdID>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub cmd_id: u32,
    /// `<NoResp/>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub no_resp: bool,
    /// `<Cred>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cred: Option<Cred>,
    /// `<Data>`: the alert code.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub data: Option<AlertCode>,
    /// `<Correlator>`: echoes an Exec's correlator in an asynchronous result.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub correlator: Option<String>,
    /// `<Item>`s.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub items: Vec<Item>,
}

impl Alert {
    /// An alert with a code and no items.
    pub fn new(code: AlertCode) -> Alert {
        Alert {
            cmd_id: 0,
            no_resp: false,
            cred: None,
            data: Some(code),
            correlator: None,
            items: Vec::new(),
        }
    }
}

/// `<Exec>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Exec {
    /// `<CmdID>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub cmd_id: u32,
    /// `<NoResp/>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub no_resp: bool,
    /// `<Cred>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cred: Option<Cred>,
    /// `<Meta>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub meta: Option<Meta>,
    /// `<Correlator>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub correlator: Option<String>,
    /// `<Item>`s (DM sends exactly one).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub items: Vec<Item>,
}

/// `<Atomic>` and `<Sequence>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Container {
    /// `<CmdID>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub cmd_id: u32,
    /// `<NoResp/>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub no_resp: bool,
    /// `<Meta>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub meta: Option<Meta>,
    /// The nested commands, in order.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub commands: Vec<Command>,
}

/// `<Status>`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Status {
    /// `<CmdID>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub cmd_id: u32,
    /// `<MsgRef>`: the MsgID of the message that carried the command.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub msg_ref: Option<u32>,
    /// `<CmdRef>`: the command's CmdID, 0 for the SyncHdr. Some clients omit
    /// it on the SyncHdr status (`QUIRKS.md`); it then decodes as 0.
    pub cmd_ref: u32,
    /// `<Cmd>`: the command's element name (`SyncHdr` for the header).
    pub cmd: String,
    /// `<TargetRef>`s.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub target_refs: Vec<String>,
    /// `<SourceRef>`s.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub source_refs: Vec<String>,
    /// `<Cred>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cred: Option<Cred>,
    /// `<Chal>`: an authentication challenge.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub chal: Option<Chal>,
    /// `<Data>`: the status code.
    pub data: StatusCode,
    /// `<Item>`s (e.g. the text typed in a UI alert).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub items: Vec<Item>,
}

/// `<Results>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Results {
    /// `<CmdID>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub cmd_id: u32,
    /// `<MsgRef>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub msg_ref: Option<u32>,
    /// `<CmdRef>`: the Get's CmdID.
    pub cmd_ref: u32,
    /// `<Meta>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub meta: Option<Meta>,
    /// `<TargetRef>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub target_ref: Option<String>,
    /// `<SourceRef>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub source_ref: Option<String>,
    /// `<Item>`s.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub items: Vec<Item>,
}

/// `<Item>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Item {
    /// `<Target>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub target: Option<Location>,
    /// `<Source>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub source: Option<Location>,
    /// `<SourceParent>` (SyncML 1.2).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub source_parent: Option<String>,
    /// `<TargetParent>` (SyncML 1.2).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub target_parent: Option<String>,
    /// `<Meta>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub meta: Option<Meta>,
    /// `<Data>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub data: Option<Data>,
    /// `<MoreData/>`: more chunks of this large object follow.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub more_data: bool,
}

/// The content of an Item's `<Data>`.
///
/// Binary values are bytes in the model whatever the encoding: XML carries
/// them as base64 text (Meta Format `b64`/`bin`), WBXML as OPAQUE, so they are
/// byte-exact across both.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Data {
    /// Character data.
    Text(String),
    /// Binary data (Format `b64` or `bin`, or WBXML OPAQUE that is not text).
    Binary(Vec<u8>),
    /// Nested markup (a TNDS tree, a SCOMO alert payload), as a canonical XML
    /// fragment: no declaration, no insignificant whitespace, `xmlns` only
    /// where the namespace changes.
    Xml(String),
}

impl Data {
    /// The data as text: the text itself, the XML fragment, or the bytes when
    /// they are UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::Text(s) | Data::Xml(s) => Some(s),
            Data::Binary(b) => std::str::from_utf8(b).ok(),
        }
    }

    /// The data as bytes (text as its UTF-8 bytes).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Data::Text(s) | Data::Xml(s) => s.as_bytes(),
            Data::Binary(b) => b,
        }
    }

    /// Length in bytes of the value.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `<Cred>`: credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Cred {
    /// `<Meta>` (Type `syncml:auth-md5`, Format `b64`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub meta: Option<Meta>,
    /// `<Data>`: the credential text.
    pub data: String,
}

/// `<Chal>`: an authentication challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Chal {
    /// `<Meta>` (Type, Format, NextNonce).
    pub meta: Meta,
}

/// `<Meta>`: MetInf elements (`OMA-TS-SyncML_MetaInfo-V1_2`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Meta {
    /// `<Format>`: `chr`, `b64`, `bin`, `node`, ... (lower-cased on decode).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub format: Option<String>,
    /// `<Type>`: a MIME type, auth type or alert type.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub r#type: Option<String>,
    /// `<Mark>`: Generic Alert importance.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub mark: Option<String>,
    /// `<Size>`: total size of a large object (first chunk).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub size: Option<u64>,
    /// `<NextNonce>`: base64 nonce for the next credentials.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub next_nonce: Option<String>,
    /// `<Version>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub version: Option<String>,
    /// `<MaxMsgSize>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub max_msg_size: Option<u64>,
    /// `<MaxObjSize>`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub max_obj_size: Option<u64>,
    /// `<EMI>`s.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub emi: Vec<String>,
    /// `<FieldLevel/>`.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub field_level: bool,
}

impl Meta {
    /// Meta with only a Format.
    pub fn format(format: impl Into<String>) -> Meta {
        Meta {
            format: Some(format.into()),
            ..Meta::default()
        }
    }

    /// Meta with a Format and a Type.
    pub fn format_type(format: impl Into<String>, r#type: impl Into<String>) -> Meta {
        Meta {
            format: Some(format.into()),
            r#type: Some(r#type.into()),
            ..Meta::default()
        }
    }

    /// Whether no element is set.
    pub fn is_empty(&self) -> bool {
        *self == Meta::default()
    }
}

/// Serde: a `false` flag is left out of the stored form (and reads back as `false`).
#[cfg(feature = "serde")]
fn is_false(b: &bool) -> bool {
    !*b
}

/// Serde: a zero CmdID (a queued command, numbered when sent) is left out.
#[cfg(feature = "serde")]
fn is_zero(n: &u32) -> bool {
    *n == 0
}
