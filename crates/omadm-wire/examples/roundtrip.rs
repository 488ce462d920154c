fn main() {
    let path = std::env::args().nth(1).expect("path");
    let bytes = std::fs::read(path).expect("read");
    match omadm_wire::decode_xml(&bytes, &omadm_wire::Limits::default()) {
        Ok(m) => {
            println!("{m:#?}");
            println!("{}", String::from_utf8_lossy(&omadm_wire::encode_xml(&m)));
            println!("{}", omadm_wire::encode_xml_pretty(&m));
        }
        Err(e) => println!("error: {e}"),
    }
}
