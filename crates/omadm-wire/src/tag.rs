//! Element names and their WBXML code-page tokens, in one table.
//!
//! Every element both codecs know is a [`Tag`]: a code page plus a token.
//! The XML codec maps `(namespace, local name)` to a tag, the WBXML codec maps
//! `(page, token)` to the same tag, so the message builder never sees the
//! encoding (`WBXML.md` §4).

use std::fmt;

/// A WBXML tag code page, which is also an XML namespace.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum Page {
    /// `SYNCML:SYNCML1.2`: the SyncML representation elements.
    SyncMl = 0,
    /// `syncml:metinf`: meta-information.
    MetInf = 1,
    /// `syncml:dmddf1.2`: DM DDF and TNDS documents.
    DmDdf = 2,
}

impl Page {
    /// The page for a WBXML code-page number.
    pub fn from_number(n: u8) -> Option<Page> {
        match n {
            0 => Some(Page::SyncMl),
            1 => Some(Page::MetInf),
            2 => Some(Page::DmDdf),
            _ => None,
        }
    }

    /// The XML namespace this page stands for (as DM 1.2 spells it).
    pub fn namespace(self) -> &'static str {
        match self {
            Page::SyncMl => "SYNCML:SYNCML1.2",
            Page::MetInf => "syncml:metinf",
            Page::DmDdf => "syncml:dmddf1.2",
        }
    }

    /// The page an XML namespace belongs to. Namespaces are compared without
    /// regard to case, and any SyncML version's namespace maps to page 0
    /// (`QUIRKS.md`: deployed clients vary the case).
    pub fn from_namespace(ns: &[u8]) -> Option<Page> {
        let ns = trim_ascii(ns);
        if ns.len() >= 13 && ns[..13].eq_ignore_ascii_case(b"syncml:syncml") {
            Some(Page::SyncMl)
        } else if ns.eq_ignore_ascii_case(b"syncml:metinf") {
            Some(Page::MetInf)
        } else if ns.len() >= 13 && ns[..13].eq_ignore_ascii_case(b"syncml:dmddf1") {
            Some(Page::DmDdf)
        } else {
            None
        }
    }

    #[cfg(test)]
    fn table(self) -> &'static [(&'static str, u8)] {
        match self {
            Page::SyncMl => SYNCML_TAGS,
            Page::MetInf => METINF_TAGS,
            Page::DmDdf => DMDDF_TAGS,
        }
    }

    fn token_of(self, name: &[u8]) -> Option<u8> {
        match self {
            Page::SyncMl => syncml_token(name),
            Page::MetInf => metinf_token(name),
            Page::DmDdf => dmddf_token(name),
        }
    }

    fn name_of(self, token: u8) -> Option<&'static str> {
        match self {
            Page::SyncMl => syncml_name(token),
            Page::MetInf => metinf_name(token),
            Page::DmDdf => dmddf_name(token),
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// A known element: its code page and its token on that page (without the
/// content/attribute bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The code page (namespace).
    pub page: Page,
    /// The token on that page, 0x05..=0x3F.
    pub token: u8,
}

impl Tag {
    const fn new(page: Page, token: u8) -> Tag {
        Tag { page, token }
    }

    /// The tag for a token on a page, if the page defines it.
    pub fn from_token(page: Page, token: u8) -> Option<Tag> {
        page.name_of(token).map(|_| Tag::new(page, token))
    }

    /// The tag with this local name on this page.
    pub fn from_name(page: Page, name: &[u8]) -> Option<Tag> {
        page.token_of(name).map(|t| Tag::new(page, t))
    }

    /// The element's local name.
    pub fn name(self) -> &'static str {
        self.page.name_of(self.token).unwrap_or("?")
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.name())
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// Each page gets its table (for iteration in tests) and two generated
// `match`es: name → token and token → name. The matches are what the codecs
// call for every element, so they must not scan the table.
macro_rules! tags {
    ($page:ident, $table:ident, $to_token:ident, $to_name:ident,
     $($cname:ident = $name:literal, $tok:literal;)*) => {
        impl Tag {
            $(
                #[doc = concat!("`<", $name, ">`")]
                pub const $cname: Tag = Tag::new(Page::$page, $tok);
            )*
        }
        #[cfg(test)]
        const $table: &[(&str, u8)] = &[$(($name, $tok),)*];
        fn $to_token(name: &[u8]) -> Option<u8> {
            match name {
                $(n if n == $name.as_bytes() => Some($tok),)*
                _ => None,
            }
        }
        fn $to_name(token: u8) -> Option<&'static str> {
            match token {
                $($tok => Some($name),)*
                _ => None,
            }
        }
    };
}

// Page 0, SyncML 1.2 (WBXML.md §4.1).
tags!(SyncMl, SYNCML_TAGS, syncml_token, syncml_name,
    ADD = "Add", 0x05; ALERT = "Alert", 0x06; ARCHIVE = "Archive", 0x07; ATOMIC = "Atomic", 0x08;
    CHAL = "Chal", 0x09; CMD = "Cmd", 0x0A; CMD_ID = "CmdID", 0x0B; CMD_REF = "CmdRef", 0x0C;
    COPY = "Copy", 0x0D; CRED = "Cred", 0x0E; DATA = "Data", 0x0F; DELETE = "Delete", 0x10;
    EXEC = "Exec", 0x11; FINAL = "Final", 0x12; GET = "Get", 0x13; ITEM = "Item", 0x14;
    LANG = "Lang", 0x15; LOC_NAME = "LocName", 0x16; LOC_URI = "LocURI", 0x17; MAP = "Map", 0x18;
    MAP_ITEM = "MapItem", 0x19; META = "Meta", 0x1A; MSG_ID = "MsgID", 0x1B; MSG_REF = "MsgRef", 0x1C;
    NO_RESP = "NoResp", 0x1D; NO_RESULTS = "NoResults", 0x1E; PUT = "Put", 0x1F;
    REPLACE = "Replace", 0x20; RESP_URI = "RespURI", 0x21; RESULTS = "Results", 0x22;
    SEARCH = "Search", 0x23; SEQUENCE = "Sequence", 0x24; SESSION_ID = "SessionID", 0x25;
    SFT_DEL = "SftDel", 0x26; SOURCE = "Source", 0x27; SOURCE_REF = "SourceRef", 0x28;
    STATUS = "Status", 0x29; SYNC = "Sync", 0x2A; SYNC_BODY = "SyncBody", 0x2B;
    SYNC_HDR = "SyncHdr", 0x2C; SYNCML = "SyncML", 0x2D; TARGET = "Target", 0x2E;
    TARGET_REF = "TargetRef", 0x2F; VER_DTD = "VerDTD", 0x31; VER_PROTO = "VerProto", 0x32;
    NUMBER_OF_CHANGES = "NumberOfChanges", 0x33; MORE_DATA = "MoreData", 0x34;
    FIELD = "Field", 0x35; FILTER = "Filter", 0x36; RECORD = "Record", 0x37;
    FILTER_TYPE = "FilterType", 0x38; SOURCE_PARENT = "SourceParent", 0x39;
    TARGET_PARENT = "TargetParent", 0x3A; MOVE = "Move", 0x3B; CORRELATOR = "Correlator", 0x3C;
);

// Page 1, MetInf (WBXML.md §4.2).
tags!(MetInf, METINF_TAGS, metinf_token, metinf_name,
    ANCHOR = "Anchor", 0x05; EMI = "EMI", 0x06; FORMAT = "Format", 0x07; FREE_ID = "FreeID", 0x08;
    FREE_MEM = "FreeMem", 0x09; LAST = "Last", 0x0A; MARK = "Mark", 0x0B;
    MAX_MSG_SIZE = "MaxMsgSize", 0x0C; MEM = "Mem", 0x0D; MET_INF = "MetInf", 0x0E;
    NEXT = "Next", 0x0F; NEXT_NONCE = "NextNonce", 0x10; SHARED_MEM = "SharedMem", 0x11;
    SIZE = "Size", 0x12; TYPE = "Type", 0x13; VERSION = "Version", 0x14;
    MAX_OBJ_SIZE = "MaxObjSize", 0x15; FIELD_LEVEL = "FieldLevel", 0x16;
);

// Page 2, DM DDF 1.2 (WBXML.md §4.3). Prefixed `DDF_` to keep them apart
// from the SyncML names they share (`Add`, `VerDTD`, ...).
tags!(DmDdf, DMDDF_TAGS, dmddf_token, dmddf_name,
    DDF_ACCESS_TYPE = "AccessType", 0x05; DDF_ACL = "ACL", 0x06; DDF_ADD = "Add", 0x07;
    DDF_B64 = "b64", 0x08; DDF_BIN = "bin", 0x09; DDF_BOOL = "bool", 0x0A; DDF_CHR = "chr", 0x0B;
    DDF_CASE_SENSE = "CaseSense", 0x0C; DDF_CIS = "CIS", 0x0D; DDF_COPY = "Copy", 0x0E;
    DDF_CS = "CS", 0x0F; DDF_DATE = "date", 0x10; DDF_DDF_NAME = "DDFName", 0x11;
    DDF_DEFAULT_VALUE = "DefaultValue", 0x12; DDF_DELETE = "Delete", 0x13;
    DDF_DESCRIPTION = "Description", 0x14; DDF_DF_FORMAT = "DFFormat", 0x15;
    DDF_DF_PROPERTIES = "DFProperties", 0x16; DDF_DF_TITLE = "DFTitle", 0x17;
    DDF_DF_TYPE = "DFType", 0x18; DDF_DYNAMIC = "Dynamic", 0x19; DDF_EXEC = "Exec", 0x1A;
    DDF_FLOAT = "float", 0x1B; DDF_FORMAT = "Format", 0x1C; DDF_GET = "Get", 0x1D;
    DDF_INT = "int", 0x1E; DDF_MAN = "Man", 0x1F; DDF_MGMT_TREE = "MgmtTree", 0x20;
    DDF_MIME = "MIME", 0x21; DDF_MOD = "Mod", 0x22; DDF_NAME = "Name", 0x23;
    DDF_NODE = "Node", 0x24; DDF_NODE_FORMAT = "node", 0x25; DDF_NODE_NAME = "NodeName", 0x26;
    DDF_NULL = "null", 0x27; DDF_OCCURRENCE = "Occurrence", 0x28; DDF_ONE = "One", 0x29;
    DDF_ONE_OR_MORE = "OneOrMore", 0x2A; DDF_ONE_OR_N = "OneOrN", 0x2B; DDF_PATH = "Path", 0x2C;
    DDF_PERMANENT = "Permanent", 0x2D; DDF_REPLACE = "Replace", 0x2E;
    DDF_RT_PROPERTIES = "RTProperties", 0x2F; DDF_SCOPE = "Scope", 0x30; DDF_SIZE = "Size", 0x31;
    DDF_TIME = "time", 0x32; DDF_TITLE = "Title", 0x33; DDF_TSTAMP = "TStamp", 0x34;
    DDF_TYPE = "Type", 0x35; DDF_VALUE = "Value", 0x36; DDF_VER_DTD = "VerDTD", 0x37;
    DDF_VER_NO = "VerNo", 0x38; DDF_XML = "xml", 0x39; DDF_ZERO_OR_MORE = "ZeroOrMore", 0x3A;
    DDF_ZERO_OR_N = "ZeroOrN", 0x3B; DDF_ZERO_OR_ONE = "ZeroOrOne", 0x3C;
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tokens_agree() {
        for page in [Page::SyncMl, Page::MetInf, Page::DmDdf] {
            for (name, tok) in page.table() {
                let t = Tag::from_token(page, *tok).expect("token in table");
                assert_eq!(t.name(), *name);
                assert_eq!(Tag::from_name(page, name.as_bytes()), Some(t));
            }
        }
        assert_eq!(Tag::from_token(Page::MetInf, 0x13), Some(Tag::TYPE));
        assert_eq!(Tag::from_token(Page::SyncMl, 0x13), Some(Tag::GET));
        assert_eq!(Tag::from_token(Page::SyncMl, 0x30), None);
        assert_ne!(Tag::DDF_NODE, Tag::DDF_NODE_FORMAT);
    }

    #[test]
    fn namespaces_in_any_case() {
        assert_eq!(
            Page::from_namespace(b"syncml:SYNCML1.2"),
            Some(Page::SyncMl)
        );
        assert_eq!(
            Page::from_namespace(b"SYNCML:SYNCML1.1"),
            Some(Page::SyncMl)
        );
        assert_eq!(Page::from_namespace(b"SYNCML:METINF"), Some(Page::MetInf));
        assert_eq!(Page::from_namespace(b"syncml:dmddf1.2"), Some(Page::DmDdf));
        assert_eq!(Page::from_namespace(b"urn:other"), None);
    }
}
