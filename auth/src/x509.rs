//! Client certificate authentication: the common name is the user, each organization a group,
//! as upstream's `staging/src/k8s.io/apiserver/pkg/authentication/request/x509`
//! (`CommonNameUserConversion`). The TLS layer has already checked the chain against
//! `--client-ca-file`; this only reads the names.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::user::UserInfo;

/// The user a verified client certificate (DER) names, or why it names none.
///
/// # Errors
///
/// A certificate that cannot be parsed, or whose common name is empty.
pub fn user_of_certificate(der: &[u8]) -> Result<UserInfo, String> {
    let (_, certificate) = X509Certificate::from_der(der)
        .map_err(|e| format!("parsing the client certificate: {e}"))?;
    let subject = certificate.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return Err("common name of user is empty".to_owned());
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    Ok(UserInfo::authenticated(name, "", groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_and_organizations() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "devs");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let user = user_of_certificate(cert.der()).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, vec!["devs", "system:authenticated"]);
        assert!(user_of_certificate(b"junk").is_err());
    }
}
