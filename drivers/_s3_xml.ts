/**
 * The S3 answers the driver reads, and the one document it writes: ListObjectsV2 pages, error
 * documents, CreateMultipartUpload and CompleteMultipartUpload. S3's XML is flat and regular,
 * so matching elements by tag name is enough.
 *
 * @module
 */

/** Decodes the XML entities of a text node. */
function xmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    switch (entity) {
      case "amp":
        return "&";
      case "lt":
        return "<";
      case "gt":
        return ">";
      case "quot":
        return '"';
      case "apos":
        return "'";
    }
    const code = entity[1] === "x" ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
    return String.fromCodePoint(code);
  });
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The text of every `<tag>` element in `xml`. */
function xmlAll(xml: string, tag: string): string[] {
  const out: string[] = [];
  const pattern = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g");
  for (const match of xml.matchAll(pattern)) out.push(xmlText(match[1]!));
  return out;
}

/** The text of the first `<tag>` element in `xml`. */
export function xmlFirst(xml: string, tag: string): string | undefined {
  return xmlAll(xml, tag)[0];
}

/** One page of a ListObjectsV2 listing. */
export interface ListPage {
  /** The object keys, decoded. */
  keys: string[];
  /** Whether more keys follow. */
  truncated: boolean;
  /** The token of the next page, when S3 gave one. */
  token: string | undefined;
}

/** Reads a ListObjectsV2 page, decoding keys sent with `encoding-type=url`. */
export function parseListPage(xml: string): ListPage {
  const encoded = xmlFirst(xml, "EncodingType") === "url";
  const keys = xmlAll(xml, "Key").map((raw) =>
    // S3's URL encoding of listed keys writes a space as "+" (and "+" as "%2B").
    encoded ? decodeURIComponent(raw.replace(/\+/g, " ")) : raw
  );
  const token = xmlFirst(xml, "NextContinuationToken");
  return {
    keys,
    truncated: xmlFirst(xml, "IsTruncated") === "true",
    token: token === "" ? undefined : token,
  };
}

/** The `Code` and `Message` of an S3 error document (either may be missing). */
export function parseError(xml: string): { code: string | undefined; message: string | undefined } {
  return { code: xmlFirst(xml, "Code"), message: xmlFirst(xml, "Message") };
}

/** The body of a CompleteMultipartUpload request for parts numbered from 1. */
export function completeUploadXml(etags: readonly string[]): string {
  return "<CompleteMultipartUpload>" +
    etags.map((etag, i) =>
      `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEscape(etag)}</ETag></Part>`
    ).join("") +
    "</CompleteMultipartUpload>";
}
