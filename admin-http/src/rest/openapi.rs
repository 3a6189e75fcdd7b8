//! The OpenAPI 3.1 document of the REST API, generated from the handlers' `#[utoipa::path]`
//! attributes (through the route table in `mod.rs`) and served at `GET /im/v1/openapi.json`.
//!
//! What the attributes leave out is added here once for every operation: the bearer security
//! scheme (the default; the anonymous auth routes opt out with `security(())`) and the error
//! responses (`4XX`, `5XX`: the one error body). The `files` tag is declared for the files
//! routes, whose handlers join the table like the others.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};

use super::error::ErrorBody;
use super::Rest;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Parley REST API",
        version = "v1",
        description = "JSON over HTTP for Parley's instant messaging: every route runs one \
            request of the binary protocol (docs/protocol.md) and renders its answer. \
            Conventions and error codes: docs/rest.md."
    ),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Accounts, tokens and devices"),
        (name = "users", description = "Profiles, settings and user search"),
        (name = "presence", description = "Online status"),
        (name = "friends", description = "Friends and friend requests"),
        (name = "blocks", description = "Blocked users"),
        (name = "groups", description = "Groups, members, roles and join requests"),
        (name = "conversations", description = "The conversation list, preferences, cursors"),
        (name = "messages", description = "Send, history, edit, recall, reactions, forward"),
        (name = "search", description = "Full-text message search"),
        (name = "calls", description = "Call signalling and call records"),
        (name = "files", description = "Uploads and downloads under /im/v1/files"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document before the routes are added: info, tags, the default security, and the
/// operations of [`beside`].
pub fn base() -> OpenApi {
    ApiDoc::openapi().merge_from(beside())
}

/// Operations under `/im/v1` served by a router beside the REST one: the files routes
/// (`crate::files`, tag `files`, full paths). Document them here by deriving an `OpenApi` that
/// lists their handlers' `#[utoipa::path]`s (`#[openapi(paths(...))]`) and returning it; the
/// tests then check each against the side-service's whole router.
pub fn beside() -> OpenApi {
    use crate::files::routes as f;
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        f::upload,
        f::list_files,
        f::delete_file,
        f::create_upload,
        f::upload_status,
        f::append,
        f::complete_upload,
        f::cancel_upload,
        f::download,
        f::thumbnail,
        f::meta
    ))]
    struct Files;
    <Files as utoipa::OpenApi>::openapi()
}

/// Whether `path` (a full path) belongs to [`beside`] rather than to the REST router.
#[cfg(test)]
pub fn is_beside(path: &str) -> bool {
    path == "/im/v1/files" || path.starts_with("/im/v1/files/")
}

/// Every operation of `doc`, as (method, path).
#[cfg(test)]
pub fn operations(doc: &OpenApi) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
            ("HEAD", &item.head),
            ("OPTIONS", &item.options),
            ("TRACE", &item.trace),
        ];
        for (method, op) in methods {
            if op.is_some() {
                out.push((method, path.clone()));
            }
        }
    }
    out
}

fn operations_mut(doc: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// Adds what every operation shares: the bearer scheme and the error responses.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An access token from /im/v1/auth (register, login, refresh, guest)",
                ))
                .build(),
        ),
    );
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    let mut nested = Vec::new();
    ErrorBody::schemas(&mut nested);
    components.schemas.extend(nested);
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            )
            .build()
    };
    components.responses.insert(
        "ClientError".to_owned(),
        RefOr::T(error(
            "The request failed: the body's `error.code` says why (docs/rest.md)",
        )),
    );
    components.responses.insert(
        "ServerError".to_owned(),
        RefOr::T(error("The server failed or is shutting down")),
    );
    for op in operations_mut(&mut doc) {
        // Handler names repeat across areas (`list`, `reject`): the tag makes them unique.
        if let (Some(tag), Some(id)) = (op.tags.as_ref().and_then(|t| t.first()), &op.operation_id)
        {
            op.operation_id = Some(format!("{tag}_{id}"));
        }
        let responses = &mut op.responses.responses;
        responses.insert(
            "4XX".to_owned(),
            RefOr::Ref(Ref::from_response_name("ClientError")),
        );
        responses.insert(
            "5XX".to_owned(),
            RefOr::Ref(Ref::from_response_name("ServerError")),
        );
    }
    doc
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn document(State(rest): State<Rest>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], rest.openapi.clone())
}
