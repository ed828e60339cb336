//! One test per false green or crash the fuzz targets found, with the input reduced to
//! its point. Each failed before its fix (strict parsing, fail-safe decision fields, complete
//! peer answers: issue 11) and must keep passing.

use hcgw_fuzz::run;

/// A raw-mode input of an answer target: the body as sent with HTTP 200.
fn raw(body: &str) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(body.as_bytes());
    v
}

#[test]
fn suzhou_a_duplicate_colour_key_is_no_green() {
    let body = r#"{"retCode":"0000","data":{"codeStatus":"R","codeStatus":"G"}}"#;
    assert_eq!(run("answer_suzhou", &raw(body)), Ok(()));
}

#[test]
fn suishen_a_duplicate_key_in_data_is_no_green() {
    let body = r#"{"code":0,"data":{"codeColor":0,"maskedName":"王*","maskedName":"王*","reasonTags":[],"registration":"DONE"}}"#;
    assert_eq!(run("answer_suishen", &raw(body)), Ok(()));
}

#[test]
fn sukang_a_green_without_xxgx_does_not_pass() {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Code>0</Code><Msg>成功</Msg>\
                <Data><Mys>绿码</Mys><Gxsj>2022-03-18 09:30:00</Gxsj><Zjlx>1</Zjlx><Gklx>无</Gklx>\
                </Data></Response>";
    assert_eq!(run("answer_sukang", &raw(body)), Ok(()));
}

#[test]
fn request_bodies_a_batch_item_with_a_duplicate_key_is_refused() {
    let body = r#"{"items":[{"subject":"suzhou","region":"hangzhou","subject":{"id_type":"passport","id_number":"E12345678","name":"LI SI"}}]}"#;
    let mut input = vec![4];
    input.extend_from_slice(body.as_bytes());
    assert_eq!(run("request_bodies", &input), Ok(()));
}

#[test]
fn peer_answer_without_hints_does_not_pass() {
    let body = r#"{"status":{"region":"sukang","color":"green","level":"clear","as_of":"2022-03-18T09:30:00+08:00"},"federation":{"provisional":false}}"#;
    // Mode 4: region index 2 (sukang), raw body.
    let mut input = vec![4];
    input.extend_from_slice(body.as_bytes());
    assert_eq!(run("peer_answer", &input), Ok(()));
}

#[test]
fn xuzhou_not_required_without_completed_does_not_pass() {
    // Found by the libFuzzer smoke: `required: false` with `completed` missing passed.
    let body = r#"{"errcode":0,"errmsg":"ok","data":{"skm":{"color":"GREEN","updatedAt":"2022-03-18T21:13:06+08:00"},"entryRegistration":{"required":false,"complet":"x"},"maskedName":"刘*","maskedIdCard":"3203**********0021"}}"#;
    assert_eq!(run("answer_xuzhou", &raw(body)), Ok(()));
}

#[test]
fn subject_a_name_already_in_masked_form_is_masked() {
    // Found by the libFuzzer smoke (an oracle false positive): "㢁*" masks to itself, which
    // reveals nothing; the oracle must accept it, and still refuse an unmasked name.
    let mut input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/subject/regression-masked-name"
    ))
    .unwrap();
    assert_eq!(run("subject", &input), Ok(()));
    input.truncate(1);
    input.extend_from_slice("张三".as_bytes());
    assert_eq!(run("subject", &input), Ok(()));
}

#[test]
fn peer_answer_sent_as_an_array_is_refused() {
    // Found by the CI fuzz smoke (2026-12-03): serde's derived structs read a JSON array
    // positionally, so this passed as a green answer of suishen.
    let body = r#"[{"region":"suishen","color":"green","level":"clear","as_of":"2020-03-03T12:35:12+08:00"},{"hit":false,"age_ms":0},{"decision_actions":[],"provisional":false}]"#;
    // Mode 2: region index 1 (suishen), raw body.
    let mut input = vec![2];
    input.extend_from_slice(body.as_bytes());
    assert_eq!(run("peer_answer", &input), Ok(()));
}
