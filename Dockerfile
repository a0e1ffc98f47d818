# jetbox: one static binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/jetbox ./cmd/jetbox

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/jetbox /usr/local/bin/jetbox
ENTRYPOINT ["/usr/local/bin/jetbox"]
CMD ["run"]
