# Vestibule container image: a static binary on an empty base, running as uid 65532.
#   docker build -t vestibule .
#   docker run -p 8080:8080 -v ./examples/quickstart:/manifests:ro vestibule --manifests /manifests
# Machines without an image registry (scripts/container-image.sh, and its test) build this same
# file with a binary compiled outside: a context holding `vestibule-static`, and
# `--build-arg BINARY=prebuilt`; the compiling stage is then skipped.
ARG BINARY=compiled

FROM rust:1.95-bookworm AS compiled
WORKDIR /src
COPY . .
# A static binary (glibc, crt-static): the runtime image holds nothing else. No Cargo.lock is
# committed, so the build resolves the versions pinned in Cargo.toml.
RUN RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --bin vestibule \
      --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/vestibule /vestibule

FROM scratch AS prebuilt
COPY vestibule-static /vestibule

FROM ${BINARY} AS binary

FROM scratch
COPY --from=binary /vestibule /vestibule
USER 65532:65532
EXPOSE 8080 8443 9090
ENTRYPOINT ["/vestibule"]
