# jetbox: one static binary on a distroless base, run as a non-root user.
#
#   docker build -t jetbox .
#   docker run --rm jetbox config
#
# The Go version matches go.mod's go line: the golang images set
# GOTOOLCHAIN=local, so an older 1.26.x could not build the module.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# Static: no cgo, so the binary runs on the distroless static base.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/jetbox ./cmd/jetbox \
    && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/jetbox /usr/local/bin/jetbox
# /data exists in the image and belongs to the nonroot user (65532), so a
# named volume mounted there starts with that owner and jetbox can write
# to it (the development memory API and an embedded nats-server keep their
# data there).
COPY --from=build --chown=65532:65532 /out/data /data
ENV SOMABRAIN_OUTBOX_DATA_DIR=/data
USER 65532:65532
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/jetbox"]
CMD ["run"]
