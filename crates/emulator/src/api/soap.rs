//! The SOAP partner `login` call, which jsforce and simple-salesforce use when given a
//! username, password and security token.
//!
//! Only `login` is served; any other SOAP operation answers a fault saying so. Success and
//! fault bodies follow Salesforce's envelopes (faults with HTTP 500).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quick_xml::Reader;
use quick_xml::events::Event;

use super::context::{ConnectionInfo, base_url};
use super::oauth::authenticate;
use crate::state::Shared;

const XML_CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(XML_CONTENT_TYPE),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fault(code: &str, fault_type: &str, message: &str) -> Response {
    let message = escape(message);
    xml_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
             xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:sf=\"urn:fault.partner.soap.sforce.com\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><soapenv:Fault>\
             <faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring><detail>\
             <sf:{fault_type} xsi:type=\"sf:{fault_type}\"><sf:exceptionCode>{code}</sf:exceptionCode>\
             <sf:exceptionMessage>{message}</sf:exceptionMessage></sf:{fault_type}></detail>\
             </soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ),
    )
}

/// The fault for credentials that do not log in (wrong, or the user's access revoked).
fn invalid_login() -> Response {
    fault(
        "INVALID_LOGIN",
        "LoginFault",
        "Invalid username, password, security token; or user locked out.",
    )
}

/// The operation name (first element in the Body) and the `username` / `password` values.
struct LoginRequest {
    operation: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

fn parse_request(body: &[u8]) -> Option<LoginRequest> {
    let mut reader = Reader::from_reader(body);
    let mut request = LoginRequest {
        operation: None,
        username: None,
        password: None,
    };
    let mut in_body = false;
    let mut current: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if in_body && request.operation.is_none() {
                    request.operation = Some(local.clone());
                }
                if local == "Body" {
                    in_body = true;
                }
                current = Some(local);
            }
            Event::Text(t) => {
                let text = t.unescape().ok()?.into_owned();
                match current.as_deref() {
                    Some("username") => request.username = Some(text),
                    Some("password") => request.password = Some(text),
                    _ => {}
                }
            }
            Event::End(_) => current = None,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Some(request)
}

/// `POST /services/Soap/u/{version}`.
pub async fn login(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<ConnectionInfo>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(request) = parse_request(&body) else {
        return fault(
            "INVALID_REQUEST",
            "UnexpectedErrorFault",
            "the request is not a SOAP envelope",
        );
    };
    if request.operation.as_deref() != Some("login") {
        let name = request.operation.unwrap_or_default();
        return fault(
            "UNSUPPORTED_API_VERSION",
            "UnexpectedErrorFault",
            &format!("the pgforce emulator serves only the SOAP login call, not {name}"),
        );
    }
    let username = request.username.unwrap_or_default();
    let Some(user) = authenticate(&shared, &username, &request.password.unwrap_or_default()) else {
        return invalid_login();
    };
    let base = base_url(&shared, &headers, connection);
    let (org_id, user_id, full_name, email) = {
        let org = shared.org();
        (
            org.org_id(),
            user.id18(org.schema()),
            org.text_of(user, "Name").unwrap_or_default(),
            org.text_of(user, "Email").unwrap_or_default(),
        )
    };
    // None while the user's credentials are revoked: the login fails as a locked-out user's.
    let Some(session_id) = shared.sessions().issue(&org_id[..15], user) else {
        return invalid_login();
    };
    let seconds = shared.sessions().lifetime().as_secs();
    let org15 = &org_id[..15];
    xml_response(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
             xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns=\"urn:partner.soap.sforce.com\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><loginResponse><result>\
             <metadataServerUrl>{base}/services/Soap/m/{version}/{org15}</metadataServerUrl>\
             <passwordExpired>false</passwordExpired><sandbox>false</sandbox>\
             <serverUrl>{base}/services/Soap/u/{version}/{org15}</serverUrl>\
             <sessionId>{session_id}</sessionId><userId>{user_id}</userId><userInfo>\
             <accessibilityMode>false</accessibilityMode><currencySymbol>$</currencySymbol>\
             <orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit>\
             <orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode>\
             <orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments>\
             <orgHasPersonAccounts>false</orgHasPersonAccounts><organizationId>{org_id}</organizationId>\
             <organizationMultiCurrency>false</organizationMultiCurrency>\
             <organizationName>pgforce emulator</organizationName><profileId>00e8A000000001AAAA</profileId>\
             <roleId xsi:nil=\"true\"/><sessionSecondsValid>{seconds}</sessionSecondsValid>\
             <userDefaultCurrencyIsoCode xsi:nil=\"true\"/><userEmail>{}</userEmail>\
             <userFullName>{}</userFullName><userId>{user_id}</userId><userLanguage>en_US</userLanguage>\
             <userLocale>en_US</userLocale><userName>{}</userName><userTimeZone>GMT</userTimeZone>\
             <userType>Standard</userType><userUiSkin>Theme3</userUiSkin></userInfo></result>\
             </loginResponse></soapenv:Body></soapenv:Envelope>",
            escape(&email),
            escape(&full_name),
            escape(&username),
        ),
    )
}
