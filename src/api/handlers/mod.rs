//! One handler file per resource family; each handler is `async fn(&Ctx, &Params) -> Result<Reply, ApiError>`.

pub mod alb;
pub mod binding;
pub mod clb;
pub mod ssl;
pub mod unet;
