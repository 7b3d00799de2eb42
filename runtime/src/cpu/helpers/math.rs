//! Scalar math the generated code does not inline: computed in f64 with Rust's libm.

use super::{Helper, HelperFn};

extern "C" fn sin(x: f64) -> f64 {
    x.sin()
}
extern "C" fn cos(x: f64) -> f64 {
    x.cos()
}
extern "C" fn tan(x: f64) -> f64 {
    x.tan()
}
extern "C" fn asin(x: f64) -> f64 {
    x.asin()
}
extern "C" fn acos(x: f64) -> f64 {
    x.acos()
}
extern "C" fn atan(x: f64) -> f64 {
    x.atan()
}
extern "C" fn sinh(x: f64) -> f64 {
    x.sinh()
}
extern "C" fn cosh(x: f64) -> f64 {
    x.cosh()
}
extern "C" fn asinh(x: f64) -> f64 {
    x.asinh()
}
extern "C" fn acosh(x: f64) -> f64 {
    x.acosh()
}
extern "C" fn atanh(x: f64) -> f64 {
    x.atanh()
}
extern "C" fn exp(x: f64) -> f64 {
    x.exp()
}
extern "C" fn log(x: f64) -> f64 {
    x.ln()
}
extern "C" fn tanh(x: f64) -> f64 {
    x.tanh()
}
extern "C" fn pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}
extern "C" fn fmod(x: f64, y: f64) -> f64 {
    x % y
}

pub(super) const HELPERS: &[Helper] = &[
    Helper {
        name: "sin",
        func: HelperFn::F64ToF64(sin),
    },
    Helper {
        name: "cos",
        func: HelperFn::F64ToF64(cos),
    },
    Helper {
        name: "tan",
        func: HelperFn::F64ToF64(tan),
    },
    Helper {
        name: "asin",
        func: HelperFn::F64ToF64(asin),
    },
    Helper {
        name: "acos",
        func: HelperFn::F64ToF64(acos),
    },
    Helper {
        name: "atan",
        func: HelperFn::F64ToF64(atan),
    },
    Helper {
        name: "sinh",
        func: HelperFn::F64ToF64(sinh),
    },
    Helper {
        name: "cosh",
        func: HelperFn::F64ToF64(cosh),
    },
    Helper {
        name: "asinh",
        func: HelperFn::F64ToF64(asinh),
    },
    Helper {
        name: "acosh",
        func: HelperFn::F64ToF64(acosh),
    },
    Helper {
        name: "atanh",
        func: HelperFn::F64ToF64(atanh),
    },
    Helper {
        name: "exp",
        func: HelperFn::F64ToF64(exp),
    },
    Helper {
        name: "log",
        func: HelperFn::F64ToF64(log),
    },
    Helper {
        name: "tanh",
        func: HelperFn::F64ToF64(tanh),
    },
    Helper {
        name: "pow",
        func: HelperFn::F64F64ToF64(pow),
    },
    Helper {
        name: "fmod",
        func: HelperFn::F64F64ToF64(fmod),
    },
];
