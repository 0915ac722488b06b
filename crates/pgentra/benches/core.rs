//! Criterion benchmarks: the cached token read (goal < 50 ns) and rendering (goal < 2 µs).
//! Results are recorded in README.md ("Benchmarks").

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pgentra::identity::{now_unix, Token, TokenSource};
use pgentra::{Config, Connector, CredentialKind, Format, Options, Secret};
use std::collections::HashMap;
use std::time::Duration;

struct Static;

#[async_trait::async_trait]
impl TokenSource for Static {
    async fn fetch(&self, _scope: &str, _d: Duration) -> pgentra::Result<Token> {
        Ok(Token {
            secret: Secret::new("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL29zc3JkYm1zLWFhZC5kYXRhYmFzZS53aW5kb3dzLm5ldCIsInhtc19taXJpZCI6Ii9zdWJzY3JpcHRpb25zL3MvcmVzb3VyY2Vncm91cHMvcmcvcHJvdmlkZXJzL01pY3Jvc29mdC5NYW5hZ2VkSWRlbnRpdHkvdXNlckFzc2lnbmVkSWRlbnRpdGllcy9teWFwcCJ9.c2lnbmF0dXJl"),
            expires_on: now_unix() + 86400,
            lifetime: None,
            refresh_in: None,
            credential: CredentialKind::ManagedIdentity,
            detail: "bench".into(),
        })
    }
    fn kind(&self) -> CredentialKind {
        CredentialKind::ManagedIdentity
    }
    fn describe(&self) -> String {
        "bench".into()
    }
}

fn connector() -> Connector {
    let env: HashMap<String, String> = [(
        "AZURE_POSTGRESQL_CONNECTIONSTRING".to_string(),
        "Server=myserver.postgres.database.azure.com;Database=app;Port=5432;Ssl Mode=Require;".to_string(),
    )]
    .into_iter()
    .collect();
    let config = Config::resolve(Options::default(), &env).unwrap();
    let c = Connector::with_source(config, Box::new(Static));
    c.token().unwrap(); // prime the cache
    c
}

fn benches(cr: &mut Criterion) {
    let c = connector();
    cr.bench_function("token_cached_read", |b| b.iter(|| black_box(c.token().unwrap())));
    cr.bench_function("try_token_cached", |b| b.iter(|| black_box(c.try_token())));
    // The pieces of the fast path: the wall clock (vDSO) and an atomic reference count.
    cr.bench_function("clock_now_unix", |b| b.iter(|| black_box(now_unix())));
    let rt = pgentra::runtime::runtime().unwrap();
    cr.bench_function("token_async_cached_read", |b| b.iter(|| rt.block_on(async { black_box(c.token_async().await.unwrap()) })));
    let params = c.params().unwrap();
    for (name, f) in [("render_libpq", Format::Libpq), ("render_uri", Format::Uri), ("render_ado", Format::Ado), ("render_jdbc", Format::Jdbc)] {
        cr.bench_function(name, |b| b.iter(|| black_box(params.render(f))));
    }
    cr.bench_function("connection_string_libpq_cached", |b| b.iter(|| black_box(c.connection_string(Format::Libpq).unwrap())));
    cr.bench_function("parse_ado_service_connector", |b| {
        b.iter(|| black_box(pgentra::conninfo::parse("Server=myserver.postgres.database.azure.com;Database=app;Port=5432;Ssl Mode=Require;User Id=aad_app;").unwrap()))
    });
}

criterion_group! {
    name = core;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = benches
}
criterion_main!(core);
