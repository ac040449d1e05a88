//! The baseline of `make bench`: the least a `lambda_http` function can do, built with the
//! functions' own profile, so their figures can be read as multiples of it.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|_: Request| async {
        Ok::<_, Error>(
            Response::builder().status(200).header("content-type", "application/json").body(Body::from("{}"))?,
        )
    }))
    .await
}
