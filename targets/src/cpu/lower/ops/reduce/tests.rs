use crate::cpu::testing::{check, floats};

#[test]
fn reduce_sum_middle_axis() {
    let x = floats(&[3, 5, 7], 1);
    check(
        "graph @t(%x: f32[3, 5, 7]) -> (y: f32[3, 1, 7]) {
           %0 = constant {value = dense<i64[1]>[1]} : i64[1]
           %1 = ReduceSum(%x, %0) : f32[3, 1, 7]
           return %1
         }",
        &[x],
        1e-5,
        1e-6,
    );
}
