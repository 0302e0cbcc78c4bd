//! scoreprior facade
