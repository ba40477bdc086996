//! Customers (consented profiles with portraits) and the till's checkout.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{Action, Caller};
use super::views;
use super::{ApiError, AppState, Deadline, ErrorBody, Form, Once, is_multipart};
use crate::engine::gate::blocking;
use crate::engine::{Checkout, CheckoutReceipt, CustomerRecord, Enrolment};
use crate::gallery::{BasketItem, Customer, Enrolled};

/// Enrols a customer: profile, consent and one or more portraits (the largest face of each).
#[utoipa::path(post, path = "/v1/customers", tag = "customers",
    request_body(content_type = "multipart/form-data", description =
        "fields: name, consent (how it was given), consent_by?, external_ref?, force?, \
         gender? (female/male), birth_year?, body_type?; one or more image files (any field name)"),
    responses((status = 201, body = views::Enrolled),
        (status = 400, description = "missing name or consent, no portrait, bad image", body = ErrorBody),
        (status = 409, description = "the face is an existing customer's", body = ErrorBody),
        (status = 422, description = "no face, or face quality too low", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    caller: Caller,
    deadline: Deadline,
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    caller.may(Action::Enrol)?;
    let once = Once::new(&state, &caller, &headers, "POST /v1/customers").await?;
    once.answer(
        StatusCode::CREATED,
        enrol(caller, deadline, state.clone(), multipart),
    )
    .await
}

async fn enrol(
    caller: Caller,
    deadline: Deadline,
    state: AppState,
    multipart: Multipart,
) -> Result<Enrolled, ApiError> {
    let enrolment = read_enrolment(multipart, caller.who()).await?;
    let customers = state.engine.customers.clone();
    let enrolled = state
        .engine
        .gate
        .run(deadline.caller(), move |claim| {
            customers.enrol(enrolment, claim)
        })
        .await?;
    Ok(enrolled)
}

/// An enrolment form as the engine takes it (also a fuzz target's entry: `crate::fuzz`).
pub(crate) async fn read_enrolment(
    multipart: Multipart,
    caller: String,
) -> Result<Enrolment, ApiError> {
    let form = Form::read(multipart).await?;
    Ok(Enrolment {
        name: form.required("name")?.to_owned(),
        gender: form.text("gender").map(str::to_lowercase),
        birth_year: form.parsed("birth_year")?,
        body_type: form.text("body_type").map(str::to_lowercase),
        consent: form.required("consent")?.to_owned(),
        consent_by: form.text("consent_by").map_or(caller, str::to_owned),
        external_ref: form.text("external_ref").map(str::to_owned),
        force: form.flag("force")?,
        photos: form.photos,
    })
}

/// Adds portraits to a customer, keeping their best ones.
#[utoipa::path(post, path = "/v1/customers/{id}/portraits", tag = "customers",
    params(("id" = i64, Path)),
    request_body(content_type = "multipart/form-data", description = "image files; force?"),
    responses((status = 201, body = views::Enrolled), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn add_portraits(
    caller: Caller,
    deadline: Deadline,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    multipart: Multipart,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    caller.may(Action::Enrol)?;
    let Path(id) = id?;
    let form = Form::read(multipart).await?;
    let force = form.flag("force")?;
    let customers = state.engine.customers.clone();
    let added = state
        .engine
        .gate
        .run(deadline.caller(), move |claim| {
            customers.add_portraits(id, &form.photos, force, claim)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// part of the name (all customers when empty)
    #[serde(default)]
    pub query: String,
}

#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(SearchQuery),
    responses((status = 200, body = Vec<Object>)), security(("api_key" = [])))]
pub async fn search(
    caller: Caller,
    State(state): State<AppState>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Vec<Customer>>, ApiError> {
    caller.may(Action::ReadCustomers)?;
    let Query(query) = query?;
    let customers = state.engine.customers.clone();
    let found = blocking(move || customers.search(&query.query)).await?;
    Ok(Json(found))
}

/// A customer with their portraits and the card the glasses would show.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn show(
    caller: Caller,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<CustomerRecord>, ApiError> {
    caller.may(Action::ReadCustomers)?;
    let Path(id) = id?;
    let customers = state.engine.customers.clone();
    Ok(Json(blocking(move || customers.show(id)).await?))
}

/// Erases the customer: profile, portraits, vectors, face crops, visits and purchases.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "customers", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.may(Action::DeleteCustomer)?;
    let Path(id) = id?;
    let customers = state.engine.customers.clone();
    let who = caller.who();
    blocking(move || customers.delete(id, &who)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The customer's copy of everything kept about them (their right of access): a tar archive
/// of `customer.json`, `visits.json` and `portraits/<id>.jpg`.
#[utoipa::path(get, path = "/v1/customers/{id}/export", tag = "customers",
    params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/x-tar", body = Vec<u8>),
        (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn export(
    caller: Caller,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.may(Action::DeleteCustomer)?;
    let Path(id) = id?;
    let customers = state.engine.customers.clone();
    let who = caller.who();
    let archive = blocking(move || customers.export(id, &who)).await?;
    let disposition = format!("attachment; filename=\"customer-{id}.tar\"");
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/x-tar".to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        archive,
    )
        .into_response())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Withdrawn {
    pub customer_id: i64,
    /// portraits (and their crops and vectors) erased
    pub portraits_erased: usize,
}

/// The customer withdraws consent: their faces are erased at once and their profile made
/// anonymous ("withdrawn customer 7"); visits and purchases are kept for the store's accounts.
#[utoipa::path(post, path = "/v1/customers/{id}/withdraw-consent", tag = "customers",
    params(("id" = i64, Path)),
    responses((status = 200, body = Withdrawn), (status = 404, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn withdraw_consent(
    caller: Caller,
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Withdrawn>, ApiError> {
    caller.may(Action::Enrol)?;
    let Path(id) = id?;
    let customers = state.engine.customers.clone();
    let who = caller.who();
    let portraits_erased = blocking(move || customers.withdraw_consent(id, &who)).await?;
    Ok(Json(Withdrawn {
        customer_id: id,
        portraits_erased,
    }))
}

/// A checkout without a camera: a known customer and the basket.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CheckoutJson {
    pub customer_id: i64,
    #[schema(value_type = Vec<views::BasketItem>)]
    pub basket: Vec<BasketItem>,
    pub camera: Option<String>,
}

/// Records a sale. JSON: a known customer and the basket. Multipart: the checkout camera's
/// portrait and/or customer_id, basket (JSON array), camera?, and with consent (how it was
/// given) an unknown customer is enrolled under `name`, or a known one gets the portrait.
#[utoipa::path(post, path = "/v1/checkout", tag = "customers",
    request_body(content = CheckoutJson, description = "or multipart/form-data: portrait file, \
        customer_id?, basket (JSON), consent?, name?, camera?"),
    responses((status = 200, body = views::CheckoutReceipt), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn checkout(
    caller: Caller,
    deadline: Deadline,
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    caller.may(Action::Checkout)?;
    let once = Once::new(&state, &caller, &headers, "POST /v1/checkout").await?;
    once.answer(
        StatusCode::OK,
        sale(caller, deadline, state.clone(), request),
    )
    .await
}

async fn sale(
    caller: Caller,
    deadline: Deadline,
    state: AppState,
    request: Request,
) -> Result<CheckoutReceipt, ApiError> {
    let checkout = read_checkout(request, caller.who()).await?;
    let till = state.engine.till.clone();
    let receipt = state
        .engine
        .gate
        .run(deadline.caller(), move |claim| {
            till.checkout(checkout, claim)
        })
        .await?;
    Ok(receipt)
}

/// A checkout as the till takes it, from JSON or a form (also a fuzz target's entry).
pub(crate) async fn read_checkout(
    request: Request,
    recorded_by: String,
) -> Result<Checkout, ApiError> {
    if !is_multipart(&request) {
        let Json(body) = Json::<CheckoutJson>::from_request(request, &()).await?;
        return Ok(Checkout {
            customer_id: Some(body.customer_id),
            portrait: None,
            basket: body.basket,
            consent: None,
            name: None,
            recorded_by,
            camera: body.camera,
        });
    }
    let form = Form::read(Multipart::from_request(request, &()).await?).await?;
    let basket = match form.text("basket") {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| ApiError::BadRequest(format!("form field \"basket\": {e}")))?,
        None => Vec::new(),
    };
    let customer_id = form.parsed("customer_id")?;
    let (consent, name, camera) = (
        form.text("consent").map(str::to_owned),
        form.text("name").map(str::to_owned),
        form.text("camera").map(str::to_owned),
    );
    let mut photos = form.photos.into_iter();
    let portrait = photos.next();
    if photos.next().is_some() {
        return Err(ApiError::BadRequest("a checkout takes one portrait".into()));
    }
    Ok(Checkout {
        customer_id,
        portrait,
        basket,
        consent,
        name,
        recorded_by,
        camera,
    })
}

/// Imports products from CSV (a header row) or JSON (an array): sku, name, category, price,
/// arrival_date (YYYY-MM-DD), stock, gender, age_range (25-35), body_types, styles, colours
/// (lists separated by `;`); other columns are kept. Bad rows are reported, the rest imported.
#[utoipa::path(post, path = "/v1/catalog", tag = "customers",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = views::ImportReport),
        (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn import_catalog(
    caller: Caller,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<crate::crm::catalog::ImportReport>, ApiError> {
    caller.may(Action::ManageCatalog)?;
    let bytes = bytes::Bytes::from_request(request, &state).await?;
    let body = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::BadRequest("the catalogue is not UTF-8 text".into()))?;
    let admin = state.engine.admin.clone();
    let report = blocking(move || admin.import_catalog(&body)).await?;
    Ok(Json(report))
}
