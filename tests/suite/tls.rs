//! TLS and mutual TLS: a partner with a client certificate signed by the
//! configured CA gets through (and still needs its token); one without a
//! certificate, or speaking plaintext, does not.

use mediation_proto::v1 as pb;
use mediation_proto::v1::dispute_service_client::DisputeServiceClient;
use mediation_tests::TestDb;
use mediation_tests::server::{Bearer, TOWN_101, TestServer};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

on_both_backends!(mutual_tls_admits_certified_clients_only);

/// PEM certificate and key.
struct Pem {
    cert: String,
    key: String,
}

/// A CA's certificate, and a server and a client certificate it signed.
fn certificates() -> (String, Pem, Pem) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    };
    let server = leaf(vec!["localhost".into()]);
    let client = leaf(vec!["town-101.partners.example".into()]);
    (ca, server, client)
}

async fn mutual_tls_admits_certified_clients_only(db: &TestDb) {
    let (ca, server_pem, client_pem) = certificates();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&server_pem.cert, &server_pem.key))
        .client_ca_root(Certificate::from_pem(&ca));
    let client_tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .domain_name("localhost");
    let with_certificate = client_tls
        .clone()
        .identity(Identity::from_pem(&client_pem.cert, &client_pem.key));
    let server = TestServer::start_with(db, true, Some(tls), |endpoint| {
        endpoint.tls_config(with_certificate).unwrap()
    })
    .await;

    // Through TLS, the token still decides who is calling.
    let unknown = server
        .disputes(&TOWN_101)
        .get_dispute(pb::GetDisputeRequest {
            dispute_id: "no-such-case".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let anonymous = DisputeServiceClient::with_interceptor(server.channel(), Bearer::none())
        .get_dispute(pb::GetDisputeRequest {
            dispute_id: "no-such-case".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // Without a client certificate the handshake, or the first call, fails.
    let addr = server.addr;
    let refused = async {
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(client_tls)
            .unwrap()
            .connect()
            .await?;
        DisputeServiceClient::with_interceptor(channel, Bearer::of(&TOWN_101))
            .get_dispute(pb::GetDisputeRequest {
                dispute_id: "no-such-case".into(),
            })
            .await
            .map_err(Into::<Box<dyn std::error::Error>>::into)?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    assert!(
        refused.await.is_err(),
        "a client without a certificate got in"
    );

    // Plaintext gets nowhere either.
    let plaintext = async {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await?;
        DisputeServiceClient::with_interceptor(channel, Bearer::of(&TOWN_101))
            .get_dispute(pb::GetDisputeRequest {
                dispute_id: "no-such-case".into(),
            })
            .await
            .map_err(Into::<Box<dyn std::error::Error>>::into)?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    assert!(plaintext.await.is_err(), "a plaintext client got in");
    server.stop().await;
}
