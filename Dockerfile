# Vestibule container image: a static binary on an empty base, running as uid 65532.
#   docker build -t vestibule .
#   docker run -p 8080:8080 -v ./examples/quickstart:/manifests:ro vestibule --manifests /manifests
# (Machines without a registry: scripts/container-image.sh builds the same image with podman.)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# A static binary (glibc, crt-static): the runtime image holds nothing else.
RUN RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --bin vestibule \
      --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/vestibule /vestibule

FROM scratch
COPY --from=build /vestibule /vestibule
USER 65532:65532
EXPOSE 8080 8443 9090
ENTRYPOINT ["/vestibule"]
